"""DETRDistill between DDQ detectors on the synthetic shapes dataset: the shapes
Focus-DDQ-DETR (d=128, ``make demo``'s headline model) teaches a narrower shapes DDQ-DETR
(d=64, same depth). Only the queries each side keeps distinct take part in the logits and
query-prior distillation and in the feature mask."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DETRDistill
from detr_efficient.modeling.detr_distill import FeatureDistillation, LogitsDistillation

from ...combined.models.focus_ddq_detr_shapes import model as teacher
from ...ddq.models.ddq_detr_shapes import model as student
from .shapes_student import narrow

narrow(student, embed_dim=64)

model = L(DETRDistill)(
    student=student,
    teacher=teacher,
    teacher_weights="",
    logits_distill=L(LogitsDistillation)(class_weight=1.0, bbox_weight=5.0, giou_weight=2.0),
    feature_distill=L(FeatureDistillation)(student_dim=64, teacher_dim=128, top_k=100),
    query_weight=1.0,
)
