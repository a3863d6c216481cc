"""Lite-DINO H3L1-(2+1)x3 R50 on COCO 2017, 12 epochs: DINO's recipe (AdamW lr 1e-4, backbone
1e-5, batch 16, clip 0.1)."""

from ..dino.dino_r50_4scale_12ep import dataloader, lr_multiplier, optimizer, train
from .models.lite_dino_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/lite_dino_r50_4scale_12ep"
