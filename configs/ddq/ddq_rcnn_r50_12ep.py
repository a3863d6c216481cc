"""DDQ R-CNN R50 on COCO 2017 with DDQ-FCN's 12-epoch recipe
(``configs/ddq/ddq_fcn_r50_12ep.py``; SPEC §5: 44.6 AP)."""

from .ddq_fcn_r50_12ep import dataloader, lr_multiplier, optimizer, train
from .models.ddq_rcnn_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/ddq_rcnn_r50_12ep"
