"""A small DDQ-DETR trained from scratch on the synthetic shapes dataset, sized for a 2-core
CPU: DINO's shapes recipe with DDQ's distinct and dense queries."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

# Every parameter at the full lr, not the shapes DINO's slowed box heads: with DDQ's queries
# the heads stayed alive (Focus-DDQ-DETR: about 28% of the box head's second hidden layer
# active at iteration 250, against 2% in the shapes DINO), and slowed they learned later.
optimizer.params.lr_factors = {}

train.output_dir = "./output/ddq_detr_shapes_cpu"
