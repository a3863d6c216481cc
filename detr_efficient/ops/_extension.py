"""Loads the compiled kernels (``detr_efficient._C``) and answers what they were built with."""

from __future__ import annotations

import functools

import torch


@functools.cache
def load() -> None:
    """Import the extension once, which registers ``torch.ops.detr_efficient.*``."""
    try:
        from detr_efficient import _C  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "detr_efficient's kernel extension (detr_efficient._C) is not built. Build it with "
            "`make build` (or `pip install -e . --no-build-isolation`) from the repository root."
        ) from error


def compiled_cuda_version() -> int:
    """CUDA version the kernels were built with (e.g. 13000), 0 for a CPU-only build."""
    load()
    return int(torch.ops.detr_efficient.cuda_version())


def require_kernels_for(device: torch.device, op: str) -> None:
    """Raise a clear error where ``op`` has no kernel for ``device``."""
    load()
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise NotImplementedError(f"{op}: no kernel for device type '{device.type}' (cpu, cuda)")
    if compiled_cuda_version() == 0:
        raise RuntimeError(
            f"{op}: detr_efficient was built without its CUDA kernels. Rebuild on a machine with "
            "a CUDA toolkit (or with FORCE_CUDA=1 and CUDA_HOME set) to run it on the GPU."
        )
    if not torch.cuda.is_available():
        raise RuntimeError(f"{op}: a CUDA tensor was given but no CUDA device is available")
