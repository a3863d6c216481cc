"""Start one process per device (per CPU slot on CPU) and join them in a process group:
Detectron2's ``launch`` with the backend chosen by the caller (it hard-codes NCCL + CUDA)."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils import comm

__all__ = ["backend_for_device", "launch"]

logger = logging.getLogger(__name__)


def backend_for_device(device: str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _free_local_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def launch(
    main_func,
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    backend: str = "nccl",
    args: tuple = (),
    timeout: timedelta = timedelta(minutes=30),
) -> None:
    """Run ``main_func(*args)`` in ``num_processes_per_machine`` processes on each machine.

    With one process in all, it runs in this process. ``dist_url`` "auto" picks a free local
    port (single machine only). With ``nccl`` local rank ``k`` uses ``cuda:k``; with ``gloo``
    each process gets an equal share of this machine's CPU threads.
    """
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"unknown distributed backend {backend!r} (use 'nccl' or 'gloo')")
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if backend == "nccl" and num_processes_per_machine > torch.cuda.device_count():
        raise ValueError(
            f"--num-gpus {num_processes_per_machine} but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    if dist_url is None or dist_url == "auto":
        if num_machines > 1:
            raise ValueError("--dist-url must name the rank-0 machine in a multi-machine job")
        dist_url = _free_local_url()
    mp.spawn(
        _worker,
        nprocs=num_processes_per_machine,
        args=(
            main_func,
            world_size,
            num_processes_per_machine,
            machine_rank,
            dist_url,
            backend,
            args,
            timeout,
        ),
        daemon=False,
    )


def _worker(
    local_rank, main_func, world_size, per_machine, machine_rank, dist_url, backend, args, timeout
):
    rank = machine_rank * per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_machine))
    dist.init_process_group(
        backend=backend, init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout
    )
    try:
        for machine in range(world_size // per_machine):
            ranks = list(range(machine * per_machine, (machine + 1) * per_machine))
            group = dist.new_group(ranks)
            if machine == machine_rank:
                comm._LOCAL_PROCESS_GROUP = group
        comm.synchronize()
        main_func(*args)
    finally:
        dist.destroy_process_group()
