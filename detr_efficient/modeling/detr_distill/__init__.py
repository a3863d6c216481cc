"""DETRDistill: Hungarian-matching logits, target-aware feature and query-prior assignment
distillation from a frozen teacher DETR to a student of the same family."""

from .detr_distill import DETRDistill, load_teacher_weights
from .features import FeatureDistillation, target_aware_mask, teacher_query_quality
from .logits import LogitsDistillation, distillation_cost, match_stages, match_to_teacher

__all__ = [
    "DETRDistill",
    "FeatureDistillation",
    "LogitsDistillation",
    "distillation_cost",
    "load_teacher_weights",
    "match_stages",
    "match_to_teacher",
    "target_aware_mask",
    "teacher_query_quality",
]
