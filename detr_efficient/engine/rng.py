"""Random-number-generator state: capture/restore in a ``torch.load(weights_only=True)``-safe
form, temporary reseeding, and seeds derived from integer tuples.

NumPy's legacy global generator is handled on purpose (``NPY002``): Detectron2's augmentations
draw from it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["capture_rng_state", "derive_seed", "preserved_rng", "restore_rng_state", "seeded_rng"]


def derive_seed(*entropy: int) -> int:
    """A well-mixed 32-bit seed that is a pure function of the integers ``entropy``."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


def capture_rng_state() -> dict:
    """States of Python's ``random``, NumPy's global generator, torch CPU and every CUDA device,
    as tensors, ints and lists only (loadable with ``torch.load(weights_only=True)``)."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached_gauss = np.random.get_state()  # noqa: NPY002
    state = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of ``capture_rng_state``. CUDA states are restored only where CUDA is in use."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    legacy = (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU the saving process saw; here there may be fewer.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without changing any global RNG state seen after it (e.g. evaluation)."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch CPU generators with ``seed`` for the block, then put their
    previous states back. CUDA generators are not touched."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])  # noqa: NPY002
        torch.set_rng_state(saved[2])
