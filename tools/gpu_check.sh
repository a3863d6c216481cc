#!/usr/bin/env bash
# GPU validation on a machine with torch (CUDA) preinstalled and no internet, e.g. Python 3.12
# with torch 2.11+cu130 and nothing else: builds the extension in place against that torch,
# runs the torch-only GPU tests, a compute-sanitizer memcheck and the kernel benchmarks, and
# writes logs and tables into a results folder.
#
#   tools/gpu_check.sh [RESULTS_DIR]      (or GPU_RESULTS=...; default gpu_results/)
#
# pytest (tests) and ninja (the benchmark's just-in-time classic-kernel baseline): where
# missing, they are installed from WHEELS_DIR (default wheels/; `make gpu-wheels` makes it
# where there is internet). Exit status: non-zero if the build or any test failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS=$(mkdir -p "${1:-${GPU_RESULTS:-$ROOT/gpu_results}}" && cd "${1:-${GPU_RESULTS:-$ROOT/gpu_results}}" && pwd)
WHEELS_DIR=${WHEELS_DIR:-$ROOT/wheels}
PYTHON=${PYTHON:-python3}
status=0

log() { printf '[gpu_check] %s\n' "$*" | tee -a "$RESULTS/summary.txt"; }
step() {  # name, command...: run, log to RESULTS/name.log, record pass/fail
  local name=$1
  shift
  local start=$SECONDS
  if "$@" > "$RESULTS/$name.log" 2>&1; then
    log "PASS $name ($((SECONDS - start)) s)"
  else
    log "FAIL $name ($((SECONDS - start)) s): see $name.log"
    status=1
  fi
}

cd "$ROOT"
: > "$RESULTS/summary.txt"
log "results in $RESULTS"
{ nvidia-smi; "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; } \
  > "$RESULTS/environment.txt" 2>&1

if [ -z "${CUDA_HOME:-}" ] && command -v nvcc > /dev/null; then
  CUDA_HOME=$(cd "$(nvcc -dryrun -E -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)" && pwd -P)
  export CUDA_HOME
fi
step build env FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} "$PYTHON" setup.py build_ext --inplace
if ! "$PYTHON" -c "import pytest, ninja" 2> /dev/null && [ -d "$WHEELS_DIR" ]; then
  step install_wheels "$PYTHON" -m pip install --no-index --find-links "$WHEELS_DIR" pytest ninja
fi

export DETR_EFFICIENT_EXPECT_CUDA_BUILD=1
step tests "$PYTHON" -m pytest tests/ops -v -p no:cacheprovider --junitxml="$RESULTS/tests.xml"
if command -v compute-sanitizer > /dev/null; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 "$PYTHON" tools/gpu_smoke.py
else
  log "SKIP memcheck: compute-sanitizer not found"
fi
step benchmarks "$PYTHON" tools/benchmark_kernels.py --device cuda --output "$RESULTS" \
  --nms-sizes 1000 5000 20000 30000
cp "$RESULTS/benchmarks.log" "$RESULTS/benchmarks_table.txt" 2> /dev/null
log "done: status $status"
exit $status
