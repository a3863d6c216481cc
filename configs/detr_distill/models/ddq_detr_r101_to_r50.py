"""DETRDistill (SPEC §6) for DDQ-DETR: a frozen DDQ-DETR 4-scale ResNet-101 teacher trains the
ResNet-50 one through its predictions (logits distillation, class 1 / L1 5 / GIoU 2), its neck
features (target-aware, top-100 queries) and its 900 queries (query-prior assignment). Only
the queries each model keeps distinct take part. Set ``model.teacher_weights``."""

from ...ddq.models.ddq_detr_r50 import model as student
from .parts import detr_distill, resnet101_teacher

model = detr_distill(student, resnet101_teacher(student), student_dim=256, teacher_dim=256)
