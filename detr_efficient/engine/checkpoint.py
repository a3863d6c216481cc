"""Atomic checkpoints: every file is written to a temporary name in its directory and then
moved into place, so a crash never leaves a partial checkpoint or a dangling
``last_checkpoint``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase
from detectron2.utils import comm

from .rng import capture_rng_state

__all__ = [
    "IncompleteCheckpointError",
    "PeriodicCheckpointHook",
    "TrainCheckpointer",
    "atomic_write",
    "atomic_torch_save",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # the mode a plain open() would give
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically."""
    atomic_write(path, lambda f: torch.save(obj, f))


class IncompleteCheckpointError(ValueError):
    """A checkpoint leaves some of the model's weights unfilled where all are required."""


class TrainCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` whose checkpoint files and ``last_checkpoint`` tag are
    written atomically (local paths only), and which refuses a checkpoint of which no weight
    fits the model (Detectron2 only logs the keys it skipped, so such a run would train or
    evaluate from random weights). With ``require_every_weight`` (evaluation, inference) it
    raises ``IncompleteCheckpointError`` for one that leaves any weight unfilled (absent, or
    of another shape)."""

    def __init__(self, *args, require_every_weight: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.require_every_weight = require_every_weight

    def _load_model(self, checkpoint: dict):
        incompatible = super()._load_model(checkpoint)
        missing = sorted(incompatible.missing_keys)
        model_keys = set(self.model.state_dict())
        if self.require_every_weight and missing:
            raise IncompleteCheckpointError(
                f"checkpoint {getattr(self, '_loading', '?')!r} does not fill {len(missing)} of "
                f"the model's {len(model_keys)} weights (e.g. {missing[:3]}; checkpoint keys the "
                f"model does not use: {sorted(incompatible.unexpected_keys)[:3]}), which would "
                "keep random values. Is it a checkpoint of this config's model?"
            )
        if model_keys and set(missing) >= model_keys:
            sample, path = sorted(model_keys)[:3], getattr(self, "_loading", "?")
            raise ValueError(
                f"checkpoint: none of the weights in {path!r} fit the model "
                f"(its keys look like {sample}; unused checkpoint keys: "
                f"{sorted(incompatible.unexpected_keys)[:3]}). A DETRDistill model needs its "
                "student's weights under 'student.' (tools/convert_checkpoint.py --prefix)."
            )
        return incompatible

    def load(self, path: str, *args, **kwargs):
        self._loading = path
        return super().load(path, *args, **kwargs)

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        atomic_torch_save(data, path)
        self.tag_last_checkpoint(os.path.basename(path))

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        tag = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(tag, lambda f: f.write(last_filename_basename.encode()))


class PeriodicCheckpointHook(HookBase):
    """Saves ``model_{iter:07d}.pth`` every ``period`` iterations and ``model_final.pth`` after
    the last one, keeping the newest ``max_to_keep`` periodic files (None: all).

    Every process's RNG state is gathered into ``"rng_states"`` (indexed by rank), so a
    resumed run continues each process's random stream exactly.
    """

    def __init__(self, checkpointer: TrainCheckpointer, period: int, max_to_keep: int | None):
        self.checkpointer, self.period, self.max_to_keep = checkpointer, period, max_to_keep
        self._saved: list[str] = []

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done >= self.trainer.max_iter:
            self._save("model_final")
        elif done % self.period == 0:
            self._save(f"model_{self.trainer.iter:07d}")
            self._prune()

    def _save(self, name: str) -> None:
        rng_states = comm.all_gather(capture_rng_state())
        self.checkpointer.save(name, rng_states=rng_states)
        self._saved.append(os.path.join(self.checkpointer.save_dir, f"{name}.pth"))

    def _prune(self) -> None:
        if self.max_to_keep is None or not comm.is_main_process():
            return
        while len(self._saved) > self.max_to_keep:
            Path(self._saved.pop(0)).unlink(missing_ok=True)
