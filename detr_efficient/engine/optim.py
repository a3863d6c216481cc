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


def _matches(name: str, key: str) -> bool:
    """``key`` is a prefix of whole dotted components of ``name``; ``"*.x.y"`` matches the
    components ``x.y`` anywhere in ``name``."""
    if key.startswith("*."):
        return f".{key[2:]}." in f".{name}."
    return name == key or name.startswith(key + ".")


def _matching_key(name: str, keys) -> str | None:
    """The longest key of ``keys`` that matches ``name`` (see ``_matches``), or None."""
    matches = [k for k in keys if _matches(name, k)]
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
    ``p``; ``{"backbone": 0.1}`` gives the backbone a tenth of the lr). A key ``"*.x"``
    matches the component ``x`` anywhere in the name (``"*.sampling_offsets"``: every
    deformable attention's offset projection); the longest matching key wins. Parameters of
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
            key = _matching_key(name, lr_factors)
            used.add(key)
            factor = 1.0 if key is None else float(lr_factors[key])
            groups.setdefault((base_lr * factor, decay), []).append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    for key in sorted(set(lr_factors) - used):
        logger.warning("optimizer lr factor for %r matches no trainable parameter", key)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
