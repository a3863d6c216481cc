#!/usr/bin/env bash
# GPU validation on a machine with torch (CUDA) preinstalled and no internet, e.g. Python 3.12
# with torch 2.11+cu130 and nothing else: builds the extension in place against that torch,
# runs the torch-only GPU tests, a compute-sanitizer memcheck and the kernel benchmarks, and
# writes logs and tables into a results folder.
#
#   tools/gpu_check.sh [RESULTS_DIR] [STAGE...]   (or GPU_RESULTS=...; default gpu_results/)
#
# STAGEs (default: all, in this order; the build always runs first, with ptxas's registers
# and spills per kernel read by tools/kernel_resources.py -> kernel_resources.json):
#   ops        the GPU tests of tests/ops and the compute-sanitizer memcheck
#   bench      tools/benchmark_kernels.py on the GPU
#   detectors  DINO and the other detectors compared on the GPU (needs the Detectron2 wheel)
#   variants   DINO on the pure-PyTorch attention path and a DETRDistill R101 -> R50
#              training step against DINO, and DETRDistill's matching benchmark (the same)
#   train      train_net.py on the GPU: DINO-R50 from random weights on coco128_train for
#              TRAIN_ITERS (default 800) iterations at TRAIN_BATCH (4) images, bf16 AMP,
#              evaluated on the same images, then 50 fp16 iterations (GradScaler); each
#              summarised by tools/training_summary.py (the bf16 run must end below 0.7x
#              its starting loss). Needs coco128 under GPU_DATA (default gpu_data/: make
#              gpu-data) and the Detectron2 wheel. TRAIN_WORKERS: data-loading processes (4);
#              TRAIN_DEVICE (default cuda): cpu for a rehearsal
# Each step is stopped after STEP_TIMEOUT seconds (default 480), and every step ends by
# CALL_BUDGET seconds after the script started (default 570: the device tool stops a command
# at 600 s); a step with under 20 s left is skipped. Where GPU_CHECK_ARCHIVE names a .tar.gz
# file, the results folder (weights left out) is packed into it after every step and every
# 30 s, replaced atomically, so that a run stopped from outside still leaves what it had
# (the device tool returns at most 8 files).
#
# pytest (tests) and ninja (the benchmark's just-in-time classic-kernel baseline): where
# missing, they are installed from WHEELS_DIR (default wheels/; `make gpu-wheels` makes it
# where there is internet). Where WHEELS_DIR also holds the pure-Python Detectron2 wheel, the
# wheels there that the interpreter lacks are installed (offline, --no-deps: Detectron2, its
# runtime deps, torchvision, scipy, ...) and DINO, Focus-DETR and Sparse DETR are compared on
# the GPU (tools/compare_detectors.py -> detectors.json, detectors.log); else that is skipped.
# Exit status: non-zero if the build or any step failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$(mkdir -p "${1:-${GPU_RESULTS:-$ROOT/gpu_results}}" && cd "${1:-${GPU_RESULTS:-$ROOT/gpu_results}}" && pwd)
shift $(($# > 0 ? 1 : 0))
if [ $# -gt 0 ]; then STAGES=("$@"); else STAGES=(ops bench detectors variants train); fi
for stage in "${STAGES[@]}"; do
  case $stage in
    ops | bench | detectors | variants | train) ;;
    *) echo "gpu_check.sh: unknown stage '$stage' (ops, bench, detectors, variants, train)" >&2 && exit 2 ;;
  esac
done
WHEELS_DIR=${WHEELS_DIR:-$ROOT/wheels}
PYTHON=${PYTHON:-python3}
STEP_TIMEOUT=${STEP_TIMEOUT:-480}
CALL_BUDGET=${CALL_BUDGET:-570}
GPU_DATA=${GPU_DATA:-$ROOT/gpu_data}
TRAIN_ITERS=${TRAIN_ITERS:-800}  # with the build and the fp16 run, within CALL_BUDGET
TRAIN_BATCH=${TRAIN_BATCH:-4}
TRAIN_DEVICE=${TRAIN_DEVICE:-cuda}
TRAIN_WORKERS=${TRAIN_WORKERS:-4}
status=0

wants() { [[ " ${STAGES[*]} " == *" $1 "* ]]; }
archive() {  # RESULTS without weights into GPU_CHECK_ARCHIVE, replaced atomically
  if [ -n "${GPU_CHECK_ARCHIVE:-}" ]; then
    local partial="$GPU_CHECK_ARCHIVE.$BASHPID.partial"
    tar czf "$partial" --exclude='*.pth' -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")" \
      && mv -f "$partial" "$GPU_CHECK_ARCHIVE"
  fi
}
log() { printf '[gpu_check] %s\n' "$*" | tee -a "$RESULTS/summary.txt"; }
step() {  # name, command...: run (at most STEP_TIMEOUT s, and not past CALL_BUDGET), log to
  # RESULTS/name.log, record pass/fail
  local name=$1 left=$((CALL_BUDGET - SECONDS)) rc
  shift
  if [ "$left" -lt 20 ]; then
    log "SKIP $name: ${left} s left of CALL_BUDGET"
    status=1
    return
  fi
  local start=$SECONDS
  timeout "$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))" "$@" > "$RESULTS/$name.log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    log "PASS $name ($((SECONDS - start)) s)"
  elif [ "$rc" -eq 124 ]; then
    log "FAIL $name ($((SECONDS - start)) s): timed out, see $name.log"
    status=1
  else
    log "FAIL $name ($((SECONDS - start)) s): exit $rc, see $name.log"
    status=1
  fi
  archive
}

cd "$ROOT"
: > "$RESULTS/summary.txt"
log "results in $RESULTS; stages: ${STAGES[*]}"
if [ -n "${GPU_CHECK_ARCHIVE:-}" ]; then
  (while sleep 30; do archive; done) > /dev/null 2>&1 & # holds no pipe of the caller open
  archiver=$!
  trap 'kill "$archiver" 2> /dev/null' EXIT
fi
{ nvidia-smi; "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; } \
  > "$RESULTS/environment.txt" 2>&1
# Detectron2 imports OpenCV where present and catches only its absence; an OpenCV that
# cannot load (e.g. built against another numpy) would stop every detector step.
if ! "$PYTHON" -c "import cv2" >> "$RESULTS/environment.txt" 2>&1; then
  export DETECTRON2_DISABLE_CV2=1
  log "note: OpenCV does not import here (environment.txt); DETECTRON2_DISABLE_CV2=1"
fi

if [ -z "${CUDA_HOME:-}" ] && command -v nvcc > /dev/null; then
  CUDA_HOME=$(cd "$(nvcc -dryrun -E -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)" && pwd -P)
  export CUDA_HOME
fi
step build env FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} DETR_EFFICIENT_NVCC_FLAGS=--resource-usage \
  "$PYTHON" setup.py build_ext --inplace
if grep -q "Compiling entry function" "$RESULTS/build.log"; then
  step kernel_resources "$PYTHON" tools/kernel_resources.py "$RESULTS/build.log" \
    --json "$RESULTS/kernel_resources.json"
else
  log "SKIP kernel_resources: the build compiled no CUDA source (nothing changed since the last)"
fi
if ! "$PYTHON" -c "import pytest, ninja" 2> /dev/null && [ -d "$WHEELS_DIR" ]; then
  step install_wheels "$PYTHON" -m pip install --no-index --find-links "$WHEELS_DIR" pytest ninja
fi

export DETR_EFFICIENT_EXPECT_CUDA_BUILD=1
if wants ops; then
  step tests "$PYTHON" -m pytest tests/ops -v -p no:cacheprovider --junitxml="$RESULTS/tests.xml"
  if command -v compute-sanitizer > /dev/null; then
    # Without the caching allocator every tensor is its own allocation, so memcheck sees
    # each tensor's bounds, not those of the allocator's 2 MiB blocks.
    before=$status
    step memcheck env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck \
      --error-exitcode 1 "$PYTHON" tools/gpu_smoke.py
    if grep -q "Device not supported" "$RESULTS/memcheck.log"; then
      status=$before
      log "SKIP memcheck: compute-sanitizer does not support this device (see memcheck.log)"
    fi
  else
    log "SKIP memcheck: compute-sanitizer not found"
  fi
fi
if wants bench; then
  step benchmarks "$PYTHON" tools/benchmark_kernels.py --device cuda --output "$RESULTS" \
    --nms-sizes 1000 5000 20000 30000 --threads-per-block 64 128 512
fi

missing_wheels() {  # names of the distributions in WHEELS_DIR that PYTHON does not have
  "$PYTHON" - "$WHEELS_DIR" << 'EOF'
import importlib.metadata as md, pathlib, re, sys

for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = wheel.name.split("-")[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(re.sub(r"[-_.]+", "-", name).lower())
EOF
}

train_dino() {  # name, precision, iterations, summary options...: train_net.py on coco128
  local name=$1 precision=$2 iters=$3
  shift 3
  # Written straight into RESULTS, so that a run cut off still leaves its metrics (the
  # archive leaves the weights out).
  step "$name" env DETR_EFFICIENT_DATA="$GPU_DATA" "$PYTHON" train_net.py \
    --config-file configs/dino/dino_r50_4scale_12ep.py \
    train.output_dir="$RESULTS/$name" train.device="$TRAIN_DEVICE" train.max_iter="$iters" \
    train.amp.enabled=True train.amp.dtype="$precision" train.eval_period=0 \
    train.checkpointer.period=1000000 train.log_period=10 \
    dataloader.train.dataset.names=coco128_train dataloader.test.dataset.names=coco128_train \
    dataloader.train.total_batch_size="$TRAIN_BATCH" dataloader.train.num_workers="$TRAIN_WORKERS" \
    dataloader.test.num_workers="$TRAIN_WORKERS" \
    "dataloader.train.mapper.min_sizes=[480,512,544,576,608]" dataloader.train.mapper.max_size=1000 \
    dataloader.test.mapper.eval_min_size=608 dataloader.test.mapper.eval_max_size=1000
  step "${name}_summary" "$PYTHON" tools/training_summary.py "$RESULTS/$name" \
    --window 10 --json "$RESULTS/$name/summary.json" "$@"
}

if ! wants detectors && ! wants variants && ! wants train; then
  :
elif compgen -G "$WHEELS_DIR/pb1_detectron2-*.whl" > /dev/null; then
  # Only what is missing, from WHEELS_DIR alone, without resolving: the image's torch (and
  # numpy etc. where present) stay as they are. Throwaway machine: a system Python that is
  # marked externally managed is installed into all the same.
  # Where the interpreter's site-packages is read-only, into a folder on PYTHONPATH instead.
  target=()
  writable="import os, sys, sysconfig; sys.exit(not os.access(sysconfig.get_paths()['purelib'], os.W_OK))"
  if ! "$PYTHON" -c "$writable"; then
    target=(--target /tmp/gpu_check_site)
    export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  mapfile -t missing < <(missing_wheels)
  if [ ${#missing[@]} -gt 0 ]; then
    step install_detector_wheels env PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install \
      --disable-pip-version-check --no-index --find-links "$WHEELS_DIR" --no-deps "${target[@]}" \
      "${missing[@]}"
  fi
  step detector_imports "$PYTHON" -c "import detr_efficient, detectron2, torch, torchvision
from detr_efficient import compat
from detr_efficient.modeling import FocusDETR, SparseDETR
print('detectron2', detectron2.__version__, detectron2.__file__)
print('torch', torch.__version__, 'torchvision', torchvision.__version__)
print('compat fixes', compat.applied_fixes())"
  # (the tools find detr_efficient, built in place here, on PYTHONPATH)
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  if wants detectors; then
    step detectors "$PYTHON" tools/compare_detectors.py \
      --configs configs/dino/dino_r50_4scale_12ep.py \
      configs/focus_detr/focus_detr_r50_4scale_12ep.py configs/sparse_detr/sparse_detr_r50_4scale_12ep.py \
      configs/lite_detr/lite_dino_r50_4scale_12ep.py configs/ddq/ddq_detr_r50_4scale_12ep.py \
      configs/ddq/ddq_fcn_r50_12ep.py configs/ddq/ddq_rcnn_r50_12ep.py \
      configs/combined/focus_ddq_detr_r50_4scale_12ep.py \
      --device cuda --rounds 10 --iters 10 --no-flops --train-iters 5 --train-precision fp32 bf16 \
      --json "$RESULTS/detectors.json"
  fi
  if wants variants; then
    # DINO on the pure-PyTorch attention path, and DETRDistill R101 -> R50 (its teacher
    # random, timing only: the smoke run of its training step), each against DINO
    step variants "$PYTHON" tools/compare_detectors.py \
      --configs configs/dino/dino_r50_4scale_12ep.py \
      --variant dino-pytorch-attention configs/dino/dino_r50_4scale_12ep.py \
      model.encoder.layer.self_attn.use_reference=True \
      model.decoder.layer.cross_attn.use_reference=True \
      --variant detr-distill-r101-r50 \
      configs/detr_distill/deformable_detr_r101_to_r50_two_stage_50ep.py \
      --device cuda --rounds 5 --iters 5 --no-flops --train-iters 5 --train-precision fp32 bf16 \
      --json "$RESULTS/variants.json"
    step matching "$PYTHON" tools/benchmark_matching.py --device cuda --output "$RESULTS"
  fi
  if wants train && [ ! -f "$GPU_DATA/coco128/annotations/instances_train2017.json" ]; then
    log "FAIL train: no coco128 in $GPU_DATA (make gpu-data, and carry gpu_data)"
    status=1
  elif wants train; then
    train_dino train_bf16 bf16 "$TRAIN_ITERS" --max-loss-ratio 0.7
    train_dino train_fp16 fp16 50
  fi
else
  log "SKIP detectors, variants and train: no Detectron2 wheel in $WHEELS_DIR (make gpu-wheels)"
fi
log "done: status $status"
archive
exit $status
