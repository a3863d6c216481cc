"""DETRDistill on the synthetic shapes dataset: the shapes Focus-DETR (d=128) teaches a
narrower shapes DINO (d=64, same depth), so the query and feature adapters are in play."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DETRDistill
from detr_efficient.modeling.detr_distill import FeatureDistillation, LogitsDistillation

from ...dino.models.dino_shapes import model as student
from ...focus_detr.models.focus_detr_shapes import model as teacher
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
