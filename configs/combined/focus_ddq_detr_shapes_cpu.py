"""Focus-DETR's encoder with DDQ-DETR's queries on the synthetic shapes dataset, on the CPU
recipe of the shapes DINO."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.focus_ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/focus_ddq_detr_shapes_cpu"
