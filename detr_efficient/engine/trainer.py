"""The training loop: one optimizer step per iteration with mixed precision, gradient
clipping and an optional EMA of the weights."""

from __future__ import annotations

import logging
import time

import torch
from detectron2.engine import SimpleTrainer, TrainerBase

from .amp import Precision
from .ema import ModelEMA
from .train_loader import ResumableTrainLoader

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


class Trainer(TrainerBase):
    """Per step: next batch → forward under ``precision.autocast()`` → sum of the loss dict →
    scaled backward → (unscale, clip the global grad norm to ``max_grad_norm``) → optimizer
    and scaler step → EMA update. Losses, ``data_time`` and ``grad_norm`` go to the event
    storage.

    ``state_dict`` holds the iteration, hook states (the lr scheduler), optimizer, grad
    scaler and the data stream's seed; the EMA is its own checkpointable.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data_loader: ResumableTrainLoader,
        optimizer: torch.optim.Optimizer,
        precision: Precision,
        *,
        max_grad_norm: float | None = None,
        grad_norm_type: float = 2.0,
        ema: ModelEMA | None = None,
    ):
        super().__init__()
        model.train()
        self.model, self.data_loader, self.optimizer = model, data_loader, optimizer
        self.precision, self.ema = precision, ema
        self.max_grad_norm, self.grad_norm_type = max_grad_norm, grad_norm_type
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        self._data_iter = None
        self.checkpointer = None  # set by ``build_trainer``; it saves ``state_dict()``

    def before_train(self) -> None:
        self._data_iter = self.data_loader.iter_from(self.start_iter)
        super().before_train()

    def after_train(self) -> None:
        self._data_iter = None  # stops the loader's workers
        super().after_train()

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("the model was switched to eval mode during training")
        start = time.perf_counter()
        data = next(self._data_iter)
        data_time = time.perf_counter() - start

        with self.precision.autocast():
            loss_dict = self.model(data)
        if not isinstance(loss_dict, dict) or not loss_dict:
            raise TypeError(
                "in training mode the model must return a non-empty dict of scalar losses, "
                f"got {type(loss_dict).__name__}"
            )
        losses = sum(loss_dict.values())

        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        scaler.scale(losses).backward()
        if self.max_grad_norm is not None:
            scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(
                self._params, self.max_grad_norm, self.grad_norm_type
            )
            self.storage.put_scalar("grad_norm", norm.item())
        SimpleTrainer.write_metrics(loss_dict, data_time)
        scaler.step(self.optimizer)
        scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["optimizer"] = self.optimizer.state_dict()
        state["grad_scaler"] = self.precision.scaler.state_dict()
        state["data_seed"] = self.data_loader.seed
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.optimizer.load_state_dict(state_dict["optimizer"])
        if state_dict["grad_scaler"]:  # empty from a run without loss scaling (fp32, bf16)
            self.precision.scaler.load_state_dict(state_dict["grad_scaler"])
        self.data_loader.seed = state_dict["data_seed"]
