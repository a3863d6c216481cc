"""Checks of a LazyConfig before training or evaluation, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

from .amp import Precision

__all__ = ["ConfigError", "check_config", "check_train_config"]

_NUMBER = (int, float)
_OPTIONAL_INT = (int, type(None))

# The fields of ``train`` (configs/common/train.py) and their types.
TRAIN_SCHEMA = {
    "output_dir": str,
    "init_checkpoint": str,
    "max_iter": int,
    "amp": {"enabled": bool, "dtype": str},
    "ddp": {"broadcast_buffers": bool, "find_unused_parameters": bool, "fp16_compression": bool},
    "checkpointer": {"period": int, "max_to_keep": _OPTIONAL_INT},
    "eval_period": int,
    "log_period": int,
    "device": str,
    "seed": int,
    "cudnn_benchmark": bool,
    "clip_grad": {"enabled": bool, "params": {"max_norm": _NUMBER, "norm_type": _NUMBER}},
    "model_ema": {"enabled": bool, "decay": _NUMBER, "eval_with_ema": bool},
}


class ConfigError(ValueError):
    """A config field is missing, unknown, of the wrong type or out of range."""


def _specs(spec) -> tuple:
    return spec if isinstance(spec, tuple) else (spec,)


def _matches(value, spec) -> bool:
    """``isinstance`` where a bool is not taken for an int or float."""
    if isinstance(value, bool):
        return bool in _specs(spec)
    return isinstance(value, _specs(spec))


def _check_types(node, schema: dict, path: str) -> None:
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path} must be a dict, got {type(node).__name__}")
    unknown = sorted(set(node.keys()) - set(schema))
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(f'{path}.{k}' for k in unknown)}")
    for key, spec in schema.items():
        field = f"{path}.{key}"
        if key not in node:
            raise ConfigError(f"{field} is missing (see configs/common/train.py)")
        value = node[key]
        if isinstance(spec, dict):
            _check_types(value, spec, field)
            continue
        if not _matches(value, spec):
            names = " or ".join("None" if s is type(None) else s.__name__ for s in _specs(spec))
            raise ConfigError(f"{field} must be {names}, got {value!r}")


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"train.device must be 'cpu' or 'cuda' (or 'cuda:N'), got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available: use cpu")


def check_train_config(train) -> None:
    """Raise ``ConfigError`` unless ``train`` has exactly the fields of ``TRAIN_SCHEMA`` with
    valid values."""
    _check_types(train, TRAIN_SCHEMA, "train")
    positive = {
        "train.max_iter": train.max_iter,
        "train.log_period": train.log_period,
        "train.checkpointer.period": train.checkpointer.period,
        "train.clip_grad.params.max_norm": train.clip_grad.params.max_norm,
    }
    for field, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{field} must be > 0, got {value}")
    if train.eval_period < 0:
        raise ConfigError(
            f"train.eval_period must be >= 0 (0: only at the end), got {train.eval_period}"
        )
    if train.checkpointer.max_to_keep is not None and train.checkpointer.max_to_keep < 1:
        raise ConfigError("train.checkpointer.max_to_keep must be >= 1 or None")
    if not 0.0 <= train.model_ema.decay < 1.0:
        raise ConfigError(f"train.model_ema.decay must be in [0, 1), got {train.model_ema.decay}")
    _check_device(train.device)
    try:
        Precision(train.amp.enabled, train.amp.dtype, train.device)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_config(cfg, eval_only: bool) -> None:
    """The entries ``train_net.py`` needs exist, and ``train`` is valid."""
    needed = ["model", "train", "dataloader.test", "dataloader.evaluator"]
    if not eval_only:
        needed += ["optimizer", "lr_multiplier", "dataloader.train"]
    for key in needed:
        if OmegaConf.select(cfg, key, default=None) is None:
            raise ConfigError(f"the config has no '{key}'")
    check_train_config(cfg.train)
