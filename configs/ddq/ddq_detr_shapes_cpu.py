"""A small DDQ-DETR trained from scratch on the synthetic shapes dataset, sized for a 2-core
CPU: DINO's shapes recipe with DDQ's distinct and dense queries."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_detr_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

# DDQ's dense box heads are built like the box heads, so they are slowed the same way.
DENSE_BOX_HEADS = {"*.dense_box_heads": 0.1, "*.dense_enc_box_head": 0.1}
optimizer.params.lr_factors.update(DENSE_BOX_HEADS)

train.output_dir = "./output/ddq_detr_shapes_cpu"
