"""DETRDistill on the synthetic shapes dataset: the shapes Focus-DETR (d=128) teaches a
narrower shapes DINO (d=64, same depth), so the query and feature adapters are in play."""

from ...dino.models.dino_shapes import model as student
from ...focus_detr.models.focus_detr_shapes import model as teacher
from .parts import detr_distill, narrow

narrow(student, embed_dim=64)
model = detr_distill(student, teacher, student_dim=64, teacher_dim=128)
