"""Focus-DETR R50, 36 epochs (SPEC §3: 50.4 AP), lr x0.1 after epoch 20 as the official
schedule (``default_coco_scheduler(36, 20, 0)``; DINO's 36 epochs decay after 30)."""

from ..common.schedule import coco_lr_multiplier
from .focus_detr_r50_4scale_12ep import dataloader, model, optimizer, train

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

lr_multiplier = coco_lr_multiplier(36, 20)
train.max_iter = 270000
train.output_dir = "./output/focus_detr_r50_4scale_36ep"
# the official 24/36-epoch configs: sine encodings with temperature 20 and no offset
model.position_embedding.temperature = 20
model.position_embedding.offset = 0.0
