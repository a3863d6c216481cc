"""DETRDistill (SPEC §6) for DDQ-DETR: a frozen DDQ-DETR 4-scale ResNet-101 teacher trains the
ResNet-50 one through its predictions (logits distillation, class 1 / L1 5 / GIoU 2), its neck
features (target-aware, top-100 queries) and its 900 queries (query-prior assignment). Only
the queries each model keeps distinct take part. Set ``model.teacher_weights``."""

import copy

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DETRDistill
from detr_efficient.modeling.detr_distill import FeatureDistillation, LogitsDistillation

from ...ddq.models.ddq_detr_r50 import model as student

teacher = copy.deepcopy(student)
teacher.backbone.depth = 101

model = L(DETRDistill)(
    student=student,
    teacher=teacher,
    teacher_weights="",
    logits_distill=L(LogitsDistillation)(class_weight=1.0, bbox_weight=5.0, giou_weight=2.0),
    feature_distill=L(FeatureDistillation)(student_dim=256, teacher_dim=256, top_k=100),
    query_weight=1.0,
)
