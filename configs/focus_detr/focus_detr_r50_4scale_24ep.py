"""Focus-DETR R50, 24 epochs (lr x0.1 after epoch 20; SPEC §3: 50.3 AP)."""

from ..common.schedule import lr_multiplier_24ep as lr_multiplier
from .focus_detr_r50_4scale_12ep import dataloader, model, optimizer, train

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 180000
train.output_dir = "./output/focus_detr_r50_4scale_24ep"
# the official 24/36-epoch configs: sine encodings with temperature 20 and no offset
model.position_embedding.temperature = 20
model.position_embedding.offset = 0.0
