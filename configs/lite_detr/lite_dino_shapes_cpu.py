"""A small Lite-DINO trained from scratch on the synthetic shapes dataset, sized for a 2-core
CPU: DINO's shapes recipe with Lite DETR's encoder and KDA."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.lite_dino_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/lite_dino_shapes_cpu"
