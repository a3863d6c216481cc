"""A small DDQ-DETR trained from scratch on the synthetic shapes dataset, sized for a 2-core
CPU: DINO's shapes recipe with DDQ's distinct and dense queries."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/ddq_detr_shapes_cpu"
