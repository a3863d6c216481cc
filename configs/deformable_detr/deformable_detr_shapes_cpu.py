"""A small two-stage Deformable DETR on the synthetic shapes dataset, sized for a CPU."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.deformable_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

# Its per-layer box heads start like DINO's shared one and are slowed for the same reason.
optimizer.params.lr_factors = {"*.box_heads": 0.1}
train.output_dir = "./output/deformable_detr_shapes_cpu"
