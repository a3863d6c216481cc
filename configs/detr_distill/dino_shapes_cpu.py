"""DETRDistill on a 2-core CPU: the shapes DINO recipe (``configs/dino/dino_shapes_cpu.py``)
for a d=64 DINO taught by the shapes Focus-DETR that ``make demo`` trains (its checkpoint is
the default ``model.teacher_weights``; run from the repository root or override it)."""

from ..dino.dino_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.dino_shapes_distill import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

model.teacher_weights = "./output/demo/focus_detr_shapes/model_final.pth"
train.output_dir = "./output/detr_distill_dino_shapes_cpu"
