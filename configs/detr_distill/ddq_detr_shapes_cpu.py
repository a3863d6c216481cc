"""DETRDistill on a 2-core CPU between DDQ detectors: the Focus-DDQ-DETR recipe
(``configs/combined/focus_ddq_detr_shapes_cpu.py``: 100 dense queries, 1100 iterations) for a
d=64 DDQ-DETR taught by the shapes Focus-DDQ-DETR that ``make demo`` trains (its checkpoint is
the default ``model.teacher_weights``; run from the repository root or override it)."""

from ..combined.focus_ddq_detr_shapes_cpu import dataloader, lr_multiplier, optimizer, train
from .models.ddq_detr_shapes_distill import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

model.student.dense_ratio = 1.0
model.teacher_weights = "./output/demo/focus_ddq_detr_shapes/model_final.pth"
train.output_dir = "./output/detr_distill_ddq_detr_shapes_cpu"
