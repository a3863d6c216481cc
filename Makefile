# Two commands on a fresh machine: `make demo` and `make test`. Both bootstrap .venv first
# (tools/bootstrap.sh: pinned packages, Detectron2, the kernel extension; idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Where nvcc exists, the CUDA kernels must have been compiled; the tests check that.
export DETR_EFFICIENT_EXPECT_CUDA_BUILD ?= $(if $(shell command -v nvcc),1,0)

.PHONY: setup test test-slow lint demo bench gpu-wheels gpu-wheels-lean gpu-data clean

setup:
	@bash tools/bootstrap.sh

# CI runs the fast subset; the slow tests (overfitting, DDP, resume with workers) must pass too.
test: setup lint
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup
	$(PY) tools/demo.py --output output/demo

bench: setup
	$(PY) tools/benchmark_kernels.py --output results/benchmarks

# Wheels for tools/gpu_check.sh on a GPU machine without internet (carry wheels/ there):
# pytest for the tests, ninja for the just-in-time classic-kernel baseline of the benchmark,
# and a pure-Python Detectron2 with the packages the detectors need (tools/gpu_wheels.sh).
gpu-wheels: setup
	PY=$(abspath $(PY)) bash tools/gpu_wheels.sh

# Only what the device image lacks (it has numpy, scipy, torchvision, pytest, ninja, ...).
DEVICE_IMAGE_HAS := numpy pillow scipy PyYAML protobuf tabulate portalocker tqdm cloudpickle \
	packaging typing_extensions tensorboard absl-py pytest iniconfig pluggy Pygments torchvision ninja
gpu-wheels-lean: setup
	PY=$(abspath $(PY)) WHEELS_DIR=$(abspath wheels_lean) GPU_WHEELS_SKIP="$(DEVICE_IMAGE_HAS)" \
		bash tools/gpu_wheels.sh

# coco128 for tools/gpu_check.sh's train stage, in a git-ignored folder that can be carried.
gpu-data:
	rm -rf gpu_data/coco128 && mkdir -p gpu_data \
		&& cp -r $${DETR_EFFICIENT_DATA:-../shared/data}/coco128 gpu_data/

clean:
	rm -rf build detr_efficient/_C*.so
