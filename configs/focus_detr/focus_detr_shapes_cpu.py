"""A small Focus-DETR trained from scratch on the synthetic shapes dataset, sized for a 2-core
CPU (the ``make demo`` job): DINO's shapes recipe with Focus-DETR's encoder."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.focus_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/focus_detr_shapes_cpu"
