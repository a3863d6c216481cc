"""Loads the compiled kernels (``detr_efficient._C``) and answers what they were built with."""

from __future__ import annotations

import torch


def _load() -> int:
    """Import the extension, which registers ``torch.ops.detr_efficient.*``; return the
    CUDA version it was compiled with."""
    try:
        from detr_efficient import _C  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "detr_efficient's kernel extension (detr_efficient._C) is not built. Build it with "
            "`make setup` (or `pip install -e . --no-build-isolation`) from the repository root."
        ) from error
    return int(torch.ops.detr_efficient.cuda_version())


_CUDA_VERSION = _load()


def compiled_cuda_version() -> int:
    """CUDA version the kernels were built with (e.g. 13000), 0 for a CPU-only build."""
    return _CUDA_VERSION


def require_kernels_for(device: torch.device, op: str) -> None:
    """Raise a clear error where ``op`` has no kernel for ``device``."""
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
