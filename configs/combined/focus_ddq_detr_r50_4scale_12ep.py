"""Focus-DETR's encoder with DDQ-DETR's queries, R50 on COCO 2017, 12 epochs at batch 16, on
DDQ-DETR's recipe (its paper gives no number for this pairing)."""

from ..ddq.ddq_detr_r50_4scale_12ep import dataloader, lr_multiplier, optimizer, train
from .models.focus_ddq_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/focus_ddq_detr_r50_4scale_12ep"
