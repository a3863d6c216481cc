"""A resumable training data stream: the batch of iteration ``i`` is a pure function of
(seed, i), whatever the number of workers, so a resumed run sees the batches an uninterrupted
run would have seen.

Positions: iteration ``i`` holds the global sample positions ``i*B .. i*B+B-1`` (``B`` the
total batch size); process ``r`` of ``R`` takes the ``r``-th slice of ``B/R`` of them. Epoch
``e`` covers ``floor(N/B)`` batches of a fresh arrangement of the ``N`` samples seeded by
(seed, e), and the augmentation RNGs are reseeded per sample from (seed, position).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.utils.data as torchdata
from detectron2.config import instantiate
from detectron2.data import DatasetFromList, build_detection_train_loader
from detectron2.utils import comm
from detectron2.utils.registry import locate

from .rng import derive_seed, seeded_rng

__all__ = ["ResumableTrainLoader", "SampleOrder", "build_train_loader"]

logger = logging.getLogger(__name__)

_ORDER_STREAM, _SAMPLE_STREAM = 0, 1
_LOADER_FIELDS = ("dataset", "mapper", "total_batch_size", "num_workers", "aspect_ratio_grouping")


def _group_ids(dataset_dicts: Sequence[dict]) -> np.ndarray:
    """0 for landscape images (width > height), 1 otherwise."""
    try:
        return np.array([int(d["width"] <= d["height"]) for d in dataset_dicts], dtype=np.int64)
    except KeyError as e:
        raise ValueError(
            "dataloader.train.aspect_ratio_grouping needs 'width' and 'height' in every "
            f"dataset dict; missing {e}"
        ) from None


class SampleOrder:
    """Dataset index of each global sample position.

    Without ``group_ids`` an epoch is a random permutation. With them, each epoch's
    permutation is cut into whole batches of one group (the samples left over are joined in
    mixed batches) and the batches are shuffled, so most batches share an aspect ratio.
    Only whole batches are used: an epoch has ``floor(N / batch_size) * batch_size``
    positions.
    """

    def __init__(self, size: int, batch_size: int, seed: int, group_ids=None):
        if size < batch_size:
            raise ValueError(
                f"the training set has {size} images, fewer than the total batch size "
                f"{batch_size} (dataloader.train.total_batch_size)"
            )
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.group_ids = None if group_ids is None else np.asarray(group_ids)
        self.epoch_length = size // batch_size * batch_size
        self._epoch, self._arrangement = -1, None

    def arrangement(self, epoch: int) -> np.ndarray:
        """The dataset indices of epoch ``epoch``, in order (length ``epoch_length``)."""
        rng = np.random.default_rng([self.seed, _ORDER_STREAM, epoch])
        perm = rng.permutation(self.size)
        if self.group_ids is None:
            return perm[: self.epoch_length]
        b, groups = self.batch_size, self.group_ids[perm]
        batches, left_over = [], np.zeros(self.size, dtype=bool)
        for group in np.unique(groups):
            slots = np.flatnonzero(groups == group)  # in permutation order
            whole = len(slots) // b * b
            batches += list(perm[slots[:whole]].reshape(-1, b))
            left_over[slots[whole:]] = True
        mixed = perm[left_over]
        batches += list(mixed[: len(mixed) // b * b].reshape(-1, b))
        order = rng.permutation(len(batches))
        return np.concatenate([batches[k] for k in order])

    def index(self, position: int) -> int:
        epoch, offset = divmod(position, self.epoch_length)
        if epoch != self._epoch:
            self._epoch, self._arrangement = epoch, self.arrangement(epoch)
        return int(self._arrangement[offset])


class _BatchStream(torchdata.IterableDataset):
    """Yields this process's batches from ``start_iter`` on; worker ``w`` of ``W`` makes the
    batches of iterations ``start_iter + w + k*W``, which the DataLoader hands out in turn."""

    def __init__(self, dataset, mapper, order: SampleOrder, start_iter: int, rank: int, local):
        self.dataset, self.mapper, self.order = dataset, mapper, order
        self.start_iter, self.rank, self.local_batch = start_iter, rank, local

    def _sample(self, position: int) -> dict:
        index = self.order.index(position)
        with seeded_rng(derive_seed(self.order.seed, _SAMPLE_STREAM, position)):
            mapped = self.mapper(self.dataset[index])
        if mapped is None:
            raise ValueError(
                f"the mapper returned None for dataset index {index}: the resumable training "
                "loader needs a mapper that maps every sample"
            )
        return mapped

    def __iter__(self) -> Iterator[list[dict]]:
        info = torchdata.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        total = self.order.batch_size
        for it in itertools.count(self.start_iter + worker, num_workers):
            first = it * total + self.rank * self.local_batch
            yield [self._sample(first + k) for k in range(self.local_batch)]


def _unbatched(batch):
    return batch


class ResumableTrainLoader:
    """Training loader with the arguments of Detectron2's ``build_detection_train_loader``
    (``dataset``: list of dataset dicts or a map-style dataset; ``mapper``) plus ``seed``.

    ``iter_from(start_iter)`` yields this process's lists of mapped dicts for iterations
    ``start_iter, start_iter + 1, ...`` (infinite); ``iter(loader)`` starts at 0.
    """

    def __init__(
        self,
        dataset,
        *,
        mapper: Callable[[dict], dict],
        total_batch_size: int,
        num_workers: int = 0,
        aspect_ratio_grouping: bool = True,
        seed: int = 0,
    ):
        if not callable(mapper):
            raise ValueError(f"dataloader.train.mapper must be a callable, got {mapper!r}")
        world, rank = comm.get_world_size(), comm.get_rank()
        if total_batch_size <= 0 or total_batch_size % world:
            raise ValueError(
                f"dataloader.train.total_batch_size={total_batch_size} must be a positive "
                f"multiple of the number of processes ({world})"
            )
        groups = None
        if aspect_ratio_grouping:
            if not isinstance(dataset, list):
                raise ValueError(
                    "dataloader.train.aspect_ratio_grouping needs a list of dataset dicts"
                )
            groups = _group_ids(dataset)
        if isinstance(dataset, list):
            dataset = DatasetFromList(dataset, copy=True, serialize=True)
        self.dataset, self.mapper = dataset, mapper
        self.total_batch_size, self.num_workers = total_batch_size, num_workers
        self.rank, self.local_batch = rank, total_batch_size // world
        self.group_ids = groups
        self.seed = seed

    def iter_from(self, start_iter: int) -> Iterator[list[dict]]:
        order = SampleOrder(len(self.dataset), self.total_batch_size, self.seed, self.group_ids)
        stream = _BatchStream(
            self.dataset, self.mapper, order, start_iter, self.rank, self.local_batch
        )
        loader = torchdata.DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_unbatched,
            generator=torch.Generator(),  # keeps the global torch RNG untouched
        )
        return iter(loader)

    def __iter__(self) -> Iterator[list[dict]]:
        return self.iter_from(0)


def build_train_loader(loader_cfg, seed: int) -> ResumableTrainLoader:
    """Instantiate ``dataloader.train`` as a ``ResumableTrainLoader``.

    A ``build_detection_train_loader`` config (what the data configs hold) is built with the
    same dataset, mapper, batch size, workers and grouping; its ``sampler`` and
    ``collate_fn`` must be unset, since the stream defines the order and batches are lists.
    The seed is ``train.seed``, passed as ``seed``.
    """
    target = loader_cfg.get("_target_")
    if isinstance(target, str):
        target = locate(target)
    if target not in (build_detection_train_loader, ResumableTrainLoader):
        raise ValueError(
            "dataloader.train._target_ must be detectron2.data.build_detection_train_loader or "
            f"detr_efficient.engine.ResumableTrainLoader, got {target!r}"
        )
    for key in loader_cfg:
        unset = key in ("sampler", "collate_fn") and loader_cfg[key] is None
        if key != "_target_" and key not in _LOADER_FIELDS and not unset:
            hint = " (the stream is seeded by train.seed)" if key == "seed" else ""
            raise ValueError(
                f"dataloader.train.{key} is not supported by the resumable loader{hint}"
            )
    kwargs = {key: instantiate(loader_cfg[key]) for key in _LOADER_FIELDS if key in loader_cfg}
    if target is build_detection_train_loader:
        logger.info("dataloader.train is built as a ResumableTrainLoader (seed %d)", seed)
    return ResumableTrainLoader(**kwargs, seed=seed)
