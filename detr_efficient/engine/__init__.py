"""Training engine used by ``train_net.py``: the trainer (AMP, gradient clipping, EMA), a
resumable training data stream, atomic checkpoints, optimizer parameter groups, config
checks and a launcher that runs DDP over NCCL or gloo."""

from .amp import Precision
from .checkpoint import (
    IncompleteCheckpointError,
    PeriodicCheckpointHook,
    TrainCheckpointer,
    atomic_torch_save,
    atomic_write,
)
from .config import ConfigError, check_config, check_train_config
from .ema import ModelEMA
from .launch import backend_for_device, launch
from .optim import param_groups
from .rng import capture_rng_state, derive_seed, preserved_rng, restore_rng_state, seeded_rng
from .runner import build_model, build_trainer, do_eval, do_train, evaluate, resume_or_load
from .train_loader import ResumableTrainLoader, SampleOrder, build_train_loader
from .trainer import Trainer

__all__ = [
    "ConfigError",
    "IncompleteCheckpointError",
    "ModelEMA",
    "PeriodicCheckpointHook",
    "Precision",
    "ResumableTrainLoader",
    "SampleOrder",
    "TrainCheckpointer",
    "Trainer",
    "atomic_torch_save",
    "atomic_write",
    "backend_for_device",
    "build_model",
    "build_train_loader",
    "build_trainer",
    "capture_rng_state",
    "check_config",
    "check_train_config",
    "derive_seed",
    "do_eval",
    "do_train",
    "evaluate",
    "launch",
    "param_groups",
    "preserved_rng",
    "restore_rng_state",
    "resume_or_load",
    "seeded_rng",
]
