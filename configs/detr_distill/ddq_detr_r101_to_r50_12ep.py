"""DETRDistill, DDQ-DETR R101 → R50 on COCO 2017 with the DDQ-DETR recipe
(``configs/ddq/ddq_detr_r50_4scale_12ep.py``: AdamW 2e-4, weight decay 0.05, 12 epochs at
batch 16). Needs ``model.teacher_weights=<R101 checkpoint>`` and the student's ImageNet
backbone as ``train.init_checkpoint`` (``tools/convert_checkpoint.py --prefix student.``)."""

from ..ddq.ddq_detr_r50_4scale_12ep import dataloader, lr_multiplier, optimizer, train
from .models.ddq_detr_r101_to_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.output_dir = "./output/detr_distill_ddq_detr_r101_to_r50_12ep"
# the student's backbone sits under "student.": "backbone" alone would match nothing
optimizer.params.lr_factors = {"student.backbone": 0.1}
