"""DDQ R-CNN R50 on COCO 2017, 12 epochs (SPEC §5: 44.6 AP) with DDQ's recipe
(``ddq_rcnn_r50_1x.py``): DDQ-FCN's (``configs/ddq/ddq_fcn_r50_12ep.py``) with AdamW lr 1e-4
and weight decay 0.05."""

from .ddq_fcn_r50_12ep import dataloader, lr_multiplier, optimizer, train
from .models.ddq_rcnn_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/ddq_rcnn_r50_12ep"
optimizer.lr = 1e-4
optimizer.weight_decay = 0.05
