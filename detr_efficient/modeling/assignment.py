"""Optimal one-to-one assignment (the Hungarian step) of many cost matrices at once.

scipy's solver runs without the GIL, so the matrices of every image and decoder stage of a
training step are solved side by side on one shared thread pool instead of one after another;
each solution is exactly the one a lone call gives."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from detectron2.utils import comm
from scipy.optimize import linear_sum_assignment

__all__ = ["assign", "assign_all", "assignment_workers", "to_cpu_together"]

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def assign(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-cost one-to-one assignment on a CPU cost ``[R, C]`` → (row, column) int64
    ``[min(R, C)]``, sorted by row."""
    if cost.dim() != 2 or cost.device.type != "cpu":
        raise ValueError(
            f"assign: the cost must be a 2-D CPU tensor, got {tuple(cost.shape)} on {cost.device}"
        )
    rows, cols = linear_sum_assignment(cost.numpy())
    rows, cols = torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)
    order = rows.argsort()
    return rows[order], cols[order]


def assignment_workers() -> int:
    """Threads for ``assign_all``: the CPU cores this process may use, shared among the
    training processes of its machine (``train_net.py``'s launcher, or torchrun's
    ``LOCAL_WORLD_SIZE``), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    local_processes = max(comm.get_local_size(), int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(1, (cores or 1) // local_processes)


def assign_all(costs: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``assign`` of every CPU cost ``[R_i, C_i]``, solved concurrently → one (row, column)
    pair per matrix, in order."""
    costs = list(costs)
    workers = min(len(costs), assignment_workers())
    if workers <= 1:
        return [assign(cost) for cost in costs]
    return list(_shared_pool(workers).map(assign, costs))


def to_cpu_together(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The ``tensors`` (any shapes, one device) as float32 on the CPU, copied in a single
    transfer (one device sync instead of one per tensor); CPU tensors are not copied."""
    tensors = list(tensors)
    if all(t.device.type == "cpu" for t in tensors):
        return [t.detach().float() for t in tensors]
    flat = torch.cat([t.detach().float().reshape(-1) for t in tensors]).cpu()
    pieces = flat.split([t.numel() for t in tensors])
    return [piece.view(t.shape) for piece, t in zip(pieces, tensors, strict=True)]


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process's assignment pool with at least ``workers`` threads (made anew in a forked
    child, whose copy of the parent's pool has no threads)."""
    global _pool, _pool_pid, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_workers < workers:
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="assign")
            _pool_pid, _pool_workers = os.getpid(), workers
        return _pool
