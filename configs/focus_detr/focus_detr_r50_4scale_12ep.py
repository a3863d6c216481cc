"""Focus-DETR R50 on COCO 2017, 12 epochs at batch 16 (SPEC §3: 48.8 AP); DINO's recipe with
detrex's undecayed normalisation layers, as the official code."""

from ..dino.dino_r50_4scale_12ep import dataloader, lr_multiplier, optimizer, train
from .models.focus_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/focus_detr_r50_4scale_12ep"
optimizer.params.weight_decay_norm = 0.0
