#!/usr/bin/env bash
# Collects into wheels/ (git-ignored) everything tools/gpu_check.sh installs on a GPU machine
# that has no internet and only Python 3.12 with torch 2.11+cu130: nothing there has to compile.
#
#   tools/gpu_wheels.sh        (make gpu-wheels; needs internet and the bootstrapped .venv)
#
#   tests/benchmarks   pytest (+ iniconfig, packaging, pluggy, pygments) and ninja (the
#                      benchmark's just-in-time classic-kernel baseline)
#   detectors          pb1_detectron2-0.6-py3-none-any.whl, built here from the verified
#                      pb1-detectron2 sdist with the setup.py patches of tools/bootstrap.sh and
#                      without detectron2._C (detr_efficient.compat stands in for it), plus
#                      what `import detr_efficient.modeling`, tools/compare_detectors.py and
#                      train_net.py import: numpy, pillow, torchvision (the build for the
#                      target's torch: TORCHVISION_VERSION), scipy (the Hungarian matcher,
#                      imported by every detector config, so inference needs it too),
#                      pycocotools, fvcore, iopath, omegaconf, antlr4, hydra-core, yacs,
#                      pyyaml, tabulate, termcolor, portalocker, tqdm, cloudpickle, and
#                      tensorboard + protobuf + absl-py (Detectron2's training writers)
#
# Left out on purpose: matplotlib (only Detectron2's Visualizer imports it: the demo and
# drawing tools, not these paths) and Detectron2's other declared requirements (black, future,
# pydot; tensorboard's server: grpcio, tensorboard-data-server, werkzeug, markdown). So
# tools/gpu_check.sh installs with --no-deps, and only the wheels whose package is missing.
#
# Binary wheels: CPython TARGET_PYTHON (3.12) manylinux x86_64; pure ones: py3-none-any, the
# sdist-only ones (fvcore, antlr4) built here. Versions follow requirements/lock.txt, except
# torchvision, which must match the target's torch (0.26.0 <-> torch 2.11, CUDA 13.0 on PyPI).
# Wheels over 1 MiB are recompressed with LZMA (see repack): about 57 MiB in all instead of
# 73, under the 64 MiB that ignored folders may take to the GPU machine.
# Environment: WHEELS_DIR, TARGET_PYTHON, TORCHVISION_VERSION, PY (the interpreter that builds),
# GPU_WHEELS_SKIP (names to leave out, e.g. "numpy" for an image known to have it; any name
# above, torchvision and ninja included). `make gpu-wheels-lean` leaves out everything the
# device image of the device tool's KINDS.md (2026-11-17) has: wheels_lean/, a few MiB, so
# that gpu_data/ (coco128, 22 MiB) fits beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
WHEELS_DIR=${WHEELS_DIR:-$ROOT/wheels}
TARGET_PYTHON=${TARGET_PYTHON:-3.12}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.26.0}
LOCK=$ROOT/requirements/lock.txt
WORK=$ROOT/build/gpu_wheels
ABI=cp${TARGET_PYTHON/./}
# The sdist's version and sha256 are tools/bootstrap.sh's, read from there (one place).
D2_VERSION=$(sed -n 's/^D2_VERSION=//p' "$ROOT/tools/bootstrap.sh")
D2_SHA256=$(sed -n 's/^D2_SHA256=//p' "$ROOT/tools/bootstrap.sh")

# Compiled (CPython ABI-specific) wheels, and pure-Python ones.
BINARY=(numpy pillow scipy pycocotools PyYAML protobuf)
PURE=(fvcore iopath omegaconf antlr4-python3-runtime hydra-core yacs tabulate termcolor
  portalocker tqdm cloudpickle packaging typing_extensions tensorboard absl-py
  pytest iniconfig pluggy Pygments)
LIMIT_MIB=60 # what travels to the GPU machine with the checkout is at most 64 MiB in all

say() { printf '[gpu_wheels] %s\n' "$*"; }
die() {
  say "ERROR: $*" >&2
  exit 1
}

skipped() { [[ " ${GPU_WHEELS_SKIP:-} " == *" $1 "* ]]; }

pinned() {  # NAME -> NAME==VERSION from requirements/lock.txt (NAME alone where not pinned)
  local version
  version=$(grep -i "^$1==" "$LOCK" | head -n1 | cut -d= -f3 || true)
  echo "$1${version:+==$version}"
}

pip_q() {  # pip, without the warnings about find-links folders of this machine's pip config
  "$PY" -m pip --disable-pip-version-check "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

download_binary() {  # specs...: ABI-specific wheels for the target, no compiling
  pip_q download --quiet --no-deps --only-binary :all: -d "$WHEELS_DIR" \
    --python-version "$TARGET_PYTHON" --implementation cp --abi "$ABI" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 "$@"
}

build_detectron2() {
  local sdist=$WORK/pb1-detectron2-$D2_VERSION.tar.gz cached=$ROOT/.venv/cache/detectron2
  mkdir -p "$WORK"
  if [ ! -f "$sdist" ] && [ -f "$cached/pb1-detectron2-$D2_VERSION.tar.gz" ]; then
    cp "$cached/pb1-detectron2-$D2_VERSION.tar.gz" "$sdist"
  fi
  if [ ! -f "$sdist" ]; then
    say "downloading pb1-detectron2==$D2_VERSION (sdist)"
    pip_q download --quiet --no-deps --no-binary :all: --no-build-isolation \
      "pb1-detectron2==$D2_VERSION" -d "$WORK"
  fi
  if ! echo "$D2_SHA256  $sdist" | sha256sum --check --status; then
    rm -f "$sdist"
    die "$sdist does not have the expected sha256 $D2_SHA256"
  fi
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar -xzf "$sdist" -C "$WORK/src" --strip-components=1
  # As tools/bootstrap.sh: no C extension (the sdist lacks its sources), model-zoo configs
  # from the package itself. Without ext_modules the wheel is pure: py3-none-any. And, here
  # only, not the sdist's top-level 'tools' scripts package, which would shadow the
  # checkout's tools/ folder as an import name wherever the wheel is installed.
  local expr pattern
  for expr in 's/ext_modules=get_extensions(),/ext_modules=[],/@ext_modules=\[\],' \
    's|get_model_zoo_configs()}|["configs/**/*.yaml", "configs/**/*.py"]}|@"configs/\*\*/\*.py"\]}' \
    's/exclude=("configs", "tests\*")/exclude=("configs", "tests*", "tools", "tools.*")/@"tools", "tools\.\*"'; do
    pattern=${expr#*@}
    sed -i "${expr%@*}" "$WORK/src/setup.py"
    grep -q "$pattern" "$WORK/src/setup.py" || die "could not patch $WORK/src/setup.py ($expr)"
  done
  say "building the pure-Python Detectron2 $D2_VERSION wheel"
  pip_q wheel --quiet --no-deps --no-build-isolation -w "$WHEELS_DIR" "$WORK/src"
  local wheel=$WHEELS_DIR/pb1_detectron2-$D2_VERSION-py3-none-any.whl
  [ -f "$wheel" ] || die "no $wheel was built"
  "$PY" - "$wheel" << 'EOF'
import sys, zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
compiled = [n for n in names if n.endswith((".so", ".pyd"))]
assert not compiled, f"compiled files in the Detectron2 wheel: {compiled}"
assert "detectron2/__init__.py" in names and "detectron2/config/lazy.py" in names, names[:20]
tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
assert tops == {"detectron2"}, f"top-level names other than detectron2: {tops}"
EOF
}

repack() {  # wheels over 1 MiB recompressed with LZMA: scipy 34 -> 25 MiB, numpy 16 -> 11
  # A wheel is a zip; pip reads it with the standard zipfile module, which reads LZMA members
  # (Python's lzma module must be there). Files, order and attributes, so RECORD and its
  # hashes, stay the same; each repacked wheel is read back and compared with the original
  # before it replaces it, and only where it is at least 5% smaller.
  "$PY" - "$WHEELS_DIR" << 'EOF'
import concurrent.futures, os, pathlib, sys, zipfile


def key(infos):
    return [(i.filename, i.CRC, i.file_size, i.external_attr) for i in infos]


def repack(path: pathlib.Path) -> str:
    tmp = path.with_name(path.name + ".lzma")
    with zipfile.ZipFile(path) as src:
        if all(i.compress_type != zipfile.ZIP_DEFLATED for i in src.infolist()):
            return f"{path.name}: not deflated, kept"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_LZMA) as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_LZMA)
        with zipfile.ZipFile(tmp) as new:
            assert new.testzip() is None and key(new.infolist()) == key(src.infolist()), tmp
    before, after = path.stat().st_size, tmp.stat().st_size
    if after > 0.95 * before:
        tmp.unlink()
        return f"{path.name}: kept ({before / 2**20:.1f} MiB)"
    os.replace(tmp, path)
    return f"{path.name}: {before / 2**20:.1f} -> {after / 2**20:.1f} MiB"


wheels = [w for w in pathlib.Path(sys.argv[1]).glob("*.whl") if w.stat().st_size > 2**20]
with concurrent.futures.ProcessPoolExecutor(max(1, min(len(wheels), 4))) as pool:
    for line in pool.map(repack, wheels):
        print("[gpu_wheels] LZMA", line)
EOF
}

check_tags() {  # every wheel must install on CPython TARGET_PYTHON, manylinux x86_64
  "$PY" - "$WHEELS_DIR" "$ABI" << 'EOF'
import pathlib, sys

folder, abi = pathlib.Path(sys.argv[1]), sys.argv[2]
bad = []
for wheel in sorted(folder.glob("*.whl")):
    python, wheel_abi, platform = wheel.stem.split("-")[-3:]
    pythons, abis, platforms = (set(part.split(".")) for part in (python, wheel_abi, platform))
    ok_python = pythons & {"py3", abi} or (wheel_abi == "abi3" and any(p.startswith("cp3") for p in pythons))
    ok_abi = abis & {"none", "abi3", abi}
    ok_platform = "any" in platforms or any(
        p.startswith("manylinux") and p.endswith("x86_64") for p in platforms
    )
    if not (ok_python and ok_abi and ok_platform):
        bad.append(wheel.name)
if bad:
    sys.exit(f"wheels that do not install on {abi} manylinux x86_64: {bad}")
EOF
}

[ -x "$PY" ] || die "$PY not found: run make setup first"
mkdir -p "$WHEELS_DIR"
rm -f "$WHEELS_DIR"/*.whl "$WHEELS_DIR"/*.whl.lzma # exactly this set, nothing stale
say "binary wheels for CPython $TARGET_PYTHON manylinux x86_64"
specs=()
for name in "${BINARY[@]}"; do skipped "$name" || specs+=("$(pinned "$name")"); done
skipped torchvision || specs+=("torchvision==$TORCHVISION_VERSION")
skipped ninja || specs+=("$(pinned ninja)")
[ ${#specs[@]} -eq 0 ] || download_binary "${specs[@]}"
say "pure-Python wheels (the sdist-only ones built here)"
specs=()
for name in "${PURE[@]}"; do skipped "$name" || specs+=("$(pinned "$name")"); done
[ ${#specs[@]} -eq 0 ] || pip_q wheel --quiet --no-deps --prefer-binary -w "$WHEELS_DIR" "${specs[@]}"
build_detectron2
check_tags
say "recompressing the large wheels"
repack
du -b "$WHEELS_DIR"/*.whl | sort -n | awk '{printf "%8.1f MiB  %s\n", $1 / 1048576, $2}'
total=$(du -cb "$WHEELS_DIR"/*.whl | tail -n1 | cut -f1)
say "$(ls "$WHEELS_DIR"/*.whl | wc -l) wheels, $((total / 1048576)) MiB in $WHEELS_DIR"
[ "$total" -le $((LIMIT_MIB * 1048576)) ] || die "wheels exceed $LIMIT_MIB MiB"
