"""A small DDQ R-CNN trained from scratch on the synthetic shapes dataset on a 2-core CPU,
with the shapes DDQ-FCN's recipe (``configs/ddq/ddq_fcn_shapes_cpu.py``: the shapes DINO's,
with the dense head's box branch at a tenth of the lr)."""

from .ddq_fcn_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_rcnn_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/ddq_rcnn_shapes_cpu"
