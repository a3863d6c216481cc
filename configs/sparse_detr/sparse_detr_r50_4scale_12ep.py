"""Sparse DETR (ρ=0.3) on DINO R50, COCO 2017, 12 epochs with DINO's recipe: Focus-DETR's
baseline at the same token budget."""

from ..dino.dino_r50_4scale_12ep import dataloader, lr_multiplier, optimizer, train
from .models.sparse_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/sparse_detr_r50_4scale_12ep"
