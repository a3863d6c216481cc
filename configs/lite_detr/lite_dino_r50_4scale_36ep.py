"""Lite-DINO H3L1-(2+1)x3 R50, 36 epochs (lr x0.1 after epoch 30): the paper's 50.4 AP."""

from ..dino.dino_r50_4scale_36ep import dataloader, lr_multiplier, optimizer, train
from .models.lite_dino_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/lite_dino_r50_4scale_36ep"
