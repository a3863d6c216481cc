"""The resumable training stream: a pure function of (seed, iteration), whatever the
number of workers or processes."""

import itertools

import numpy as np
import pytest
import torch

from detr_efficient.engine import ResumableTrainLoader, SampleOrder, build_train_loader
from detr_efficient.engine import train_loader as train_loader_module


def test_epochs_are_seeded_permutations_of_whole_batches():
    order = SampleOrder(size=10, batch_size=4, seed=3)
    assert order.epoch_length == 8
    epochs = [[order.index(e * 8 + k) for k in range(8)] for e in range(3)]
    for epoch in epochs:
        assert len(set(epoch)) == 8 and set(epoch) <= set(range(10))
    assert epochs[0] != epochs[1]
    other = SampleOrder(size=10, batch_size=4, seed=3)
    assert [other.index(p) for p in reversed(range(24))] == [i for epoch in epochs for i in epoch][
        ::-1
    ]
    assert epochs[0] != [SampleOrder(10, 4, seed=4).index(p) for p in range(8)]


def test_grouped_epochs_keep_batches_of_one_aspect_ratio():
    groups = np.random.default_rng(0).integers(0, 2, size=23)
    order = SampleOrder(size=23, batch_size=4, seed=1, group_ids=groups)
    arrangement = order.arrangement(0)
    assert len(arrangement) == order.epoch_length == 20
    assert len(set(arrangement.tolist())) == 20
    batches = arrangement.reshape(-1, 4)
    mixed = sum(len(set(groups[b])) > 1 for b in batches)
    assert mixed <= 1  # only the leftovers of the two groups can share a batch


def test_too_small_a_dataset_is_named():
    with pytest.raises(ValueError, match="total_batch_size"):
        SampleOrder(size=3, batch_size=4, seed=0)


def _loader(toy_cfg, num_workers=0):
    cfg = toy_cfg(f"dataloader.train.num_workers={num_workers}")
    return build_train_loader(cfg.dataloader.train, seed=5)


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x["image_id"] == y["image_id"]
        assert torch.equal(x["image"], y["image"])
        assert torch.equal(x["instances"].gt_boxes.tensor, y["instances"].gt_boxes.tensor)


def test_resuming_the_stream_and_worker_count_change_nothing(toy_cfg):
    loader = _loader(toy_cfg)
    assert isinstance(loader, ResumableTrainLoader)
    torch_state = torch.get_rng_state()
    full = list(itertools.islice(loader.iter_from(0), 6))  # 16 images, batch 4: 1.5 epochs
    assert torch.equal(torch.get_rng_state(), torch_state)  # augmentation RNG is separate
    for a, b in zip(list(itertools.islice(loader.iter_from(3), 3)), full[3:], strict=True):
        _same_batches(a, b)
    with_workers = list(itertools.islice(_loader(toy_cfg, num_workers=2).iter_from(2), 4))
    for a, b in zip(with_workers, full[2:], strict=True):
        _same_batches(a, b)
    sizes = {tuple(x["image"].shape) for batch in full for x in batch}
    assert len(sizes) > 1  # augmentation does vary between samples


def test_processes_split_the_same_global_batch(toy_cfg, monkeypatch):
    whole = next(_loader(toy_cfg).iter_from(4))
    monkeypatch.setattr(train_loader_module.comm, "get_world_size", lambda: 2)
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(train_loader_module.comm, "get_rank", lambda rank=rank: rank)
        parts += next(_loader(toy_cfg).iter_from(4))
    _same_batches(parts, whole)


def test_unsupported_loader_configs_are_named(toy_cfg):
    cfg = toy_cfg().dataloader
    cfg.train.sampler = {"_target_": "torch.utils.data.SequentialSampler"}
    with pytest.raises(ValueError, match=r"dataloader\.train\.sampler"):
        build_train_loader(cfg.train, seed=0)
    with pytest.raises(ValueError, match=r"dataloader\.train\._target_"):
        build_train_loader(cfg.test, seed=0)


def test_loader_accepts_its_own_config_but_not_its_own_seed(toy_cfg):
    train = toy_cfg().dataloader.train
    train._target_ = ResumableTrainLoader
    assert build_train_loader(train, seed=9).seed == 9
    train.seed = 0
    with pytest.raises(ValueError, match=r"dataloader\.train\.seed .*train\.seed"):
        build_train_loader(train, seed=9)
