"""Focus-DETR R50, 36 epochs (lr x0.1 after epoch 30; SPEC §3: 50.4 AP)."""

from ..common.schedule import lr_multiplier_36ep as lr_multiplier
from .focus_detr_r50_4scale_12ep import dataloader, model, optimizer, train

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 270000
train.output_dir = "./output/focus_detr_r50_4scale_36ep"
