"""Mixed precision settings: autocast context and gradient scaler for a device."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["Precision"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """``autocast()`` for the forward pass and ``scaler`` for the backward pass.

    bf16 runs on CPU and CUDA without loss scaling; fp16 needs CUDA and a ``GradScaler``
    (enabled only then). Disabled, both are no-ops.
    """

    def __init__(self, enabled: bool, dtype: str, device: torch.device):
        if dtype not in _DTYPES:
            raise ValueError(f"train.amp.dtype must be 'bf16' or 'fp16', got {dtype!r}")
        self.enabled, self.device_type = bool(enabled), torch.device(device).type
        self.dtype = _DTYPES[dtype]
        if self.enabled and self.dtype == torch.float16 and self.device_type != "cuda":
            raise ValueError(
                "train.amp.dtype='fp16' needs a CUDA device (a GradScaler); "
                f"train.device is {self.device_type!r}: use train.amp.dtype='bf16' there"
            )
        if (
            self.enabled
            and self.dtype == torch.bfloat16
            and self.device_type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise ValueError("train.amp.dtype='bf16' is not supported by this GPU; use 'fp16'")
        use_scaler = self.enabled and self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=use_scaler)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)
