"""DETRDistill, two-stage Deformable DETR (box refinement) R101 → R50 on COCO 2017 with the
Deformable DETR recipe (``configs/deformable_detr/deformable_detr_r50_two_stage_50ep.py``:
AdamW 2e-4, 50 epochs at batch 16). The paper's 44.1 → 46.6 AP is for single-stage
Deformable DETR without refinement, a variant this library does not build. Needs
``model.teacher_weights=<R101 checkpoint>`` and the student's ImageNet backbone as
``train.init_checkpoint`` (``tools/convert_checkpoint.py --prefix student.``)."""

from ..deformable_detr.deformable_detr_r50_two_stage_50ep import (
    dataloader,
    lr_multiplier,
    optimizer,
    train,
)
from .models.deformable_detr_r101_to_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/detr_distill_deformable_detr_r101_to_r50_50ep"
# the student's backbone sits under "student.": "backbone" alone would match nothing
optimizer.params.lr_factors = {"student.backbone": 0.1, "*.sampling_offsets": 0.1}
