"""Argument checks run before any kernel, so a bad call is a Python error naming the argument."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(
    op: str,
    name: str,
    value,
    shape: Sequence[int | str | None],
    dtypes: Sequence[torch.dtype] = FLOATING_DTYPES,
) -> None:
    """Check that ``value`` is a tensor of a listed dtype whose shape matches ``shape``.

    ``shape`` entries: an int (exact size), or a str/None (any size, documented by name).
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: '{name}' must be a torch.Tensor, got {type(value).__name__}")
    expected = "[" + ", ".join(str(s) if s is not None else "*" for s in shape) + "]"
    if value.dim() != len(shape):
        raise ValueError(
            f"{op}: '{name}' must have shape {expected}, got {list(value.shape)} "
            f"({value.dim()} dims instead of {len(shape)})"
        )
    for axis, (size, want) in enumerate(zip(value.shape, shape, strict=True)):
        if isinstance(want, int) and size != want:
            raise ValueError(
                f"{op}: '{name}' must have shape {expected}, got {list(value.shape)} "
                f"(dim {axis} is {size}, expected {want})"
            )
    if value.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{op}: '{name}' must have dtype in ({names}), got {value.dtype}")


def check_same_size(op: str, sizes: dict[str, int]) -> None:
    """Check that the named sizes (e.g. ``{"boxes.shape[0]": 5, "scores.shape[0]": 4}``) agree."""
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name}={size}" for name, size in sizes.items())
        raise ValueError(f"{op}: sizes must match: {listed}")


def check_same_dtype(op: str, tensors: dict[str, torch.Tensor]) -> None:
    if len({t.dtype for t in tensors.values()}) > 1:
        listed = ", ".join(f"{name} is {t.dtype}" for name, t in tensors.items())
        raise TypeError(f"{op}: tensors must share one dtype: {listed}")


def check_same_device(op: str, tensors: dict[str, torch.Tensor]) -> torch.device:
    """Check that all tensors live on one device and return it."""
    devices = {t.device for t in tensors.values()}
    if len(devices) > 1:
        listed = ", ".join(f"{name} on {t.device}" for name, t in tensors.items())
        raise ValueError(f"{op}: tensors must be on one device: {listed}")
    return next(iter(devices))


def check_finite_float(op: str, name: str, value) -> float:
    """Check that ``value`` is a real, finite number and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{op}: '{name}' must be a float, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{op}: '{name}' must be finite, got {value}")
    return float(value)
