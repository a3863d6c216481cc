"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["ModelEMA"]


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class ModelEMA:
    """``ema = decay * ema + (1 - decay) * weights`` after every optimizer step.

    ``module`` is a frozen copy of the model in eval mode holding the averages (floating-point
    parameters and buffers; other buffers are copied). Its ``state_dict`` is the averaged
    model's, so a checkpoint's ``"ema"`` entry loads straight into the model.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.model_ema.decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Set the averages to the model's current weights."""
        self.module.load_state_dict(_unwrap(model).state_dict())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = _unwrap(model).state_dict()
        averages, weights = [], []
        for name, avg in self.module.state_dict().items():
            value = current[name].detach()
            if avg.is_floating_point():
                averages.append(avg)
                weights.append(value.to(avg.dtype))
            else:
                avg.copy_(value)
        if averages:
            torch._foreach_lerp_(averages, weights, 1.0 - self.decay)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.module.load_state_dict(state_dict)
