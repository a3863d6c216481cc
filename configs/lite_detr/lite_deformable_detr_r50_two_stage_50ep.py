"""Lite Deformable DETR H3L1-(2+1)x3 R50, 50 epochs: Deformable DETR's recipe (SPEC §4:
46.7 AP, 123 GFLOPs)."""

from ..deformable_detr.deformable_detr_r50_two_stage_50ep import (
    dataloader,
    lr_multiplier,
    optimizer,
    train,
)
from .models.lite_deformable_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/lite_deformable_detr_r50_two_stage_50ep"
