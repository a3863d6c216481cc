"""A small DDQ R-CNN trained from scratch on the synthetic shapes dataset on a 2-core CPU,
with the shapes DINO's recipe (``configs/dino/dino_shapes_cpu.py``)."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_rcnn_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/ddq_rcnn_shapes_cpu"
