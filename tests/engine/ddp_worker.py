"""What each process of the DDP test runs (spawned by ``detr_efficient.engine.launch``)."""

import detr_efficient  # noqa: F401  (first: its compat fixes must precede any Detectron2 import)

# isort: split

import torch
import torch.distributed as dist
from detectron2.config import LazyConfig
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from detr_efficient.engine import do_train


def train_and_gather(config_file: str, overrides: list[str], result_file: str) -> None:
    """Train like ``train_net.py`` does, then gather every rank's final weights on rank 0."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), overrides)
    seed_all_rng(cfg.train.seed + comm.get_rank())
    trainer = do_train(cfg)
    weights = {k: v.detach().cpu() for k, v in trainer.model.module.state_dict().items()}
    gathered = comm.all_gather(weights)
    if comm.is_main_process():
        result = {
            "weights": gathered,
            "backend": dist.get_backend(),
            "world": comm.get_world_size(),
        }
        torch.save(result, result_file)
