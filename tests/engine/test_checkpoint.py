"""Atomic checkpoint files, weights-only loading, and RNG state capture/restore."""

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from detr_efficient.engine import (
    IncompleteCheckpointError,
    TrainCheckpointer,
    atomic_torch_save,
    atomic_write,
    capture_rng_state,
    restore_rng_state,
    seeded_rng,
)


def _draws():
    return random.random(), float(np.random.rand())  # noqa: NPY002, torch.rand(2).tolist()


def test_failed_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "model.pth"
    atomic_torch_save({"step": 1}, path)

    def write_then_fail(f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, write_then_fail)
    with pytest.raises(Exception):  # noqa: B017  (any pickling error)
        atomic_torch_save({"not picklable": lambda: 0}, path)
    assert os.listdir(tmp_path) == ["model.pth"]  # no temporary file left
    assert torch.load(path) == {"step": 1}  # the previous checkpoint is intact

    missing = tmp_path / "new.pth"
    with pytest.raises(OSError):
        atomic_write(missing, write_then_fail)
    assert not missing.exists()


def test_checkpointer_saves_weights_only_loadable_files(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    checkpointer = TrainCheckpointer(model, str(tmp_path), optimizer=optimizer)
    checkpointer.save("model_0000009", iteration=9, rng_states=[capture_rng_state()])
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert oct((tmp_path / "model_0000009.pth").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    data = torch.load(tmp_path / "model_0000009.pth", weights_only=True)
    assert data["iteration"] == 9
    assert torch.equal(data["model"]["weight"], model.weight)
    assert data["optimizer"]["state"][0]["step"] == 1


def test_checkpointer_refuses_a_checkpoint_of_which_nothing_fits(tmp_path):
    """Detectron2 only logs unused keys; a file of which no weight fits (here: a backbone
    saved without the 'student.' prefix a distillation model needs) is an error naming it."""
    pair = nn.ModuleDict({"student": nn.Linear(2, 2), "teacher": nn.Linear(2, 2)})
    path = tmp_path / "backbone.pth"
    torch.save({"model": {"weight": torch.ones(2, 2), "bias": torch.ones(2)}}, path)
    with pytest.raises(ValueError, match=r"none of the weights in .*backbone\.pth.* fit"):
        TrainCheckpointer(pair).load(str(path))
    torch.save({"model": {"student.weight": torch.ones(2, 2)}}, path)
    TrainCheckpointer(pair).load(str(path))  # a part is enough
    assert torch.equal(pair["student"].weight, torch.ones(2, 2))


def test_an_evaluation_checkpointer_needs_every_weight(tmp_path):
    model = nn.Linear(2, 2)
    path = tmp_path / "part.pth"
    torch.save({"model": {"weight": torch.ones(2, 2)}}, path)
    with pytest.raises(IncompleteCheckpointError, match=r"part\.pth' does not fill 1 of .*'bias'"):
        TrainCheckpointer(model, require_every_weight=True).load(str(path))
    torch.save({"model": {"weight": torch.ones(2, 2), "bias": torch.zeros(2)}}, path)
    TrainCheckpointer(model, require_every_weight=True).load(str(path))
    assert torch.equal(model.bias, torch.zeros(2))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    random.gauss(0, 1)  # python keeps a cached gaussian
    np.random.standard_normal()  # noqa: NPY002  (numpy too)
    atomic_torch_save(capture_rng_state(), tmp_path / "rng.pth")
    expected = _draws()
    _draws()
    restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    assert _draws() == expected


def test_seeded_rng_is_reproducible_and_leaves_global_state_alone():
    state = capture_rng_state()
    with seeded_rng(7):
        first = _draws()
    after = _draws()
    restore_rng_state(state)
    with seeded_rng(7):
        assert _draws() == first
    assert _draws() == after


def test_cuda_rng_states_restore_on_the_gpus_there_are(monkeypatch):
    # Saved with two GPUs visible, resumed with one: the second state is left, not an error.
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: restored.append((s, i)))
    state = capture_rng_state()
    first, second = torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)
    restore_rng_state({**state, "cuda": [first, second]})
    assert len(restored) == 1 and restored[0][0] is first and restored[0][1] == 0
