"""Focus-DETR's encoder with DDQ-DETR's queries on the synthetic shapes dataset: the headline
model of ``make demo``. The shapes DINO's CPU recipe, with 100 dense queries (DDQ's ratio 1.5
would be 150: a fifth slower per iteration here) and 1100 iterations, about 10 minutes of
training on a 2-core CPU."""

from ..ddq.ddq_detr_shapes_cpu import DENSE_BOX_HEADS
from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.focus_ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

model.dense_ratio = 1.0
optimizer.params.lr_factors.update(DENSE_BOX_HEADS)
train.max_iter = 1100
train.output_dir = "./output/focus_ddq_detr_shapes_cpu"
