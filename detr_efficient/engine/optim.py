"""Optimizer parameter groups with per-prefix learning-rate factors (e.g. the backbone)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["param_groups"]

logger = logging.getLogger(__name__)

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _matching_prefix(name: str, prefixes) -> str | None:
    """The longest prefix (whole dotted components) that ``name`` starts with, or None."""
    matches = [p for p in prefixes if name == p or name.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    *,
    weight_decay_norm: float | None = None,
    lr_factors: Mapping[str, float] | None = None,
) -> list[dict]:
    """One group per (lr, weight decay) pair over the trainable parameters of ``model``.

    A parameter named ``p.rest`` gets ``base_lr * lr_factors[p]`` (longest matching prefix
    ``p``; ``{"backbone": 0.1}`` gives the backbone a tenth of the lr). Parameters of
    normalization layers get ``weight_decay_norm`` when it is set. Shared parameters count once.
    """
    lr_factors = dict(lr_factors or {})
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    used: set[str] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{param_name}" if module_name else param_name
            decay = weight_decay_norm if is_norm and weight_decay_norm is not None else weight_decay
            prefix = _matching_prefix(name, lr_factors)
            used.add(prefix)
            factor = 1.0 if prefix is None else float(lr_factors[prefix])
            key = (base_lr * factor, decay)
            groups.setdefault(key, []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    for prefix in sorted(set(lr_factors) - used):
        logger.warning("optimizer lr factor for %r matches no trainable parameter", prefix)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
