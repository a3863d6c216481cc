"""DETRDistill, SPEC §6: a frozen Deformable DETR ResNet-101 teacher (two-stage, box
refinement) trains the ResNet-50 one through its predictions (logits distillation, class 1 /
L1 5 / GIoU 2), its neck features (target-aware, top-100 queries) and its 300 queries
(query-prior assignment). Set ``model.teacher_weights`` to the teacher's checkpoint."""

from ...deformable_detr.models.deformable_detr_r50 import model as student
from .parts import detr_distill, resnet101_teacher

model = detr_distill(student, resnet101_teacher(student), student_dim=256, teacher_dim=256)
