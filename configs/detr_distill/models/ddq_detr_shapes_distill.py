"""DETRDistill between DDQ detectors on the synthetic shapes dataset: the shapes
Focus-DDQ-DETR (d=128, ``make demo``'s headline model) teaches a narrower shapes DDQ-DETR
(d=64, same depth). Only the queries each side keeps distinct take part in the logits and
query-prior distillation and in the feature mask."""

from ...combined.models.focus_ddq_detr_shapes import model as teacher
from ...ddq.models.ddq_detr_shapes import model as student
from .parts import detr_distill, narrow

narrow(student, embed_dim=64)
model = detr_distill(student, teacher, student_dim=64, teacher_dim=128)
