"""Focus-DETR's encoder with DDQ-DETR's queries on the synthetic shapes dataset: the headline
model of ``make demo``. The shapes DINO's CPU recipe, with 100 dense queries (DDQ's ratio 1.5
would be 150: a fifth slower per iteration here) and 1100 iterations, about 10 minutes of
training on a 2-core CPU."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.focus_ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

model.dense_ratio = 1.0
# Every parameter at the full lr, as in DDQ-DETR's shapes recipe: the box heads stayed alive
# here, and slowed like the shapes DINO's they learned later (39.1 AP instead of 45.8).
optimizer.params.lr_factors = {}
train.max_iter = 1100
train.output_dir = "./output/focus_ddq_detr_shapes_cpu"
