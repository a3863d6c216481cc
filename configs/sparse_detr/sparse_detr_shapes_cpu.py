"""A small Sparse DETR trained from scratch on the shapes dataset on a CPU (DINO's shapes
recipe), to compare with ``focus_detr_shapes_cpu`` at the same token budget."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.sparse_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/sparse_detr_shapes_cpu"
