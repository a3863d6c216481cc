"""Which (spatial_shapes, level_start_index) pairs were already found valid.

Checking their values means reading them back from the device, which on a GPU waits for
every queued kernel. A detector passes one pair to each of its encoder and decoder layers,
so the ops remember the last few valid pairs by identity and version counter and read a pair
back once per forward instead of once per call. An in-place change bumps the version
counter, so a changed pair is checked again. Inference tensors have no version counter and
are checked on every call.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import torch


class CheckedLevels:
    """A small LRU set of valid level pairs for value tensors of ``tokens`` tokens."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, int], tuple] = OrderedDict()

    @staticmethod
    def _trackable(*tensors: torch.Tensor) -> bool:
        return not any(t.is_inference() for t in tensors)

    def contains(self, spatial_shapes, level_start_index, tokens: int) -> bool:
        """Whether these very tensors, unchanged since, were found valid for ``tokens``."""
        if not self._trackable(spatial_shapes, level_start_index):
            return False
        key = (id(spatial_shapes), id(level_start_index))
        entry = self._entries.get(key)
        if entry is None:
            return False
        shapes_ref, starts_ref, versions, checked_tokens = entry
        found = (
            shapes_ref() is spatial_shapes
            and starts_ref() is level_start_index
            and versions == (spatial_shapes._version, level_start_index._version)
            and checked_tokens == tokens
        )
        if found:
            self._entries.move_to_end(key)
        return found

    def add(self, spatial_shapes, level_start_index, tokens: int) -> None:
        """Remember a pair just found valid for ``tokens`` (oldest entry dropped when full)."""
        if not self._trackable(spatial_shapes, level_start_index):
            return
        key = (id(spatial_shapes), id(level_start_index))
        self._entries[key] = (
            weakref.ref(spatial_shapes),
            weakref.ref(level_start_index),
            (spatial_shapes._version, level_start_index._version),
            tokens,
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
