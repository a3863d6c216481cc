#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with the pinned packages, Detectron2
# (the verified pb1-detectron2 sdist, installed without its C extension, unless a Detectron2
# is already importable), then the kernel extension built in place. Steps already done are
# skipped. Environment: PYTHON (interpreter for the venv), VENV (its folder), CUDA_HOME,
# TORCH_CUDA_ARCH_LIST, FORCE_CUDA, MAX_JOBS (see setup.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
LOCK=$ROOT/requirements/lock.txt
D2_VERSION=0.6
D2_SHA256=5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29

say() { printf '[bootstrap] %s\n' "$*"; }

create_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
}

install_locked_packages() {
  local stamp="$VENV/.lock.sha256" want
  want=$(sha256sum "$LOCK" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  say "installing pinned packages from requirements/lock.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LOCK"
  echo "$want" > "$stamp"
}

patch_setup() {  # sed expression, then a grep pattern proving it applied
  sed -i "$1" "$work/src/setup.py"
  grep -q "$2" "$work/src/setup.py" || { say "ERROR: could not apply '$1' to $work/src/setup.py" >&2; exit 1; }
}

install_detectron2() {
  if "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('detectron2') is None)"; then
    return
  fi
  local work="$VENV/cache/detectron2" sdist
  mkdir -p "$work"
  sdist="$work/pb1-detectron2-$D2_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    say "downloading pb1-detectron2==$D2_VERSION (sdist)"
    "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-binary :all: --no-build-isolation "pb1-detectron2==$D2_VERSION" -d "$work"
  fi
  if ! echo "$D2_SHA256  $sdist" | sha256sum --check --status; then
    say "ERROR: $sdist does not have the expected sha256 $D2_SHA256" >&2
    rm -f "$sdist"
    exit 1
  fi
  rm -rf "$work/src" && mkdir -p "$work/src"
  tar -xzf "$sdist" -C "$work/src" --strip-components=1
  # The sdist does not ship detectron2/layers/csrc, so its C extension cannot be built; and
  # its setup.py looks for the model-zoo configs in a top-level configs/ it does not ship.
  patch_setup 's/ext_modules=get_extensions(),/ext_modules=[],/' 'ext_modules=\[\],'
  patch_setup 's|get_model_zoo_configs()}|["configs/**/*.yaml", "configs/**/*.py"]}|' '"configs/\*\*/\*.py"\]}'
  say "installing Detectron2 $D2_VERSION (Python only)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation "$work/src"
}

build_extension() {
  if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
    # The first nvcc on PATH may be a wrapper script: ask nvcc for its real root.
    CUDA_HOME=$(nvcc -dryrun -E -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
    CUDA_HOME=$(cd "$CUDA_HOME" && pwd -P)
    export CUDA_HOME
  fi
  say "building detr_efficient._C (CUDA_HOME=${CUDA_HOME:-none}, arch ${TORCH_CUDA_ARCH_LIST:-default})"
  # ptxas's per-kernel report goes to build/ptxas_resources.log (the kernels of the last build
  # that compiled CUDA code), which a test checks for spills; the console gets the rest.
  local report="$ROOT/build/ptxas_resources.log"
  mkdir -p "$ROOT/build"
  (cd "$ROOT" && MAX_JOBS=${MAX_JOBS:-2} \
    DETR_EFFICIENT_NVCC_FLAGS="--resource-usage ${DETR_EFFICIENT_NVCC_FLAGS:-}" \
    "$VENV/bin/python" setup.py --quiet build_ext --inplace) 2>&1 \
    | tee "$report.partial" | { grep -v -e "^ptxas info" -e "bytes stack frame" || true; }
  if grep -q "Compiling entry function" "$report.partial"; then
    mv "$report.partial" "$report"
  else
    rm -f "$report.partial"
  fi
}

link_package() {
  # An editable install of the source tree (the extension is built in place above).
  local site
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$ROOT" > "$site/detr_efficient.pth"
}

create_venv
install_locked_packages
install_detectron2
build_extension
link_package
say "ready: $VENV"
