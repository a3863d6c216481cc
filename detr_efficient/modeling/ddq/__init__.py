"""DDQ (dense distinct queries): the deltas over DINO for DDQ-DETR."""

from .ddq_detr import DDQDETR
from .dense_loss import DenseQueryLoss, quality_focal_loss, top_k_assign
from .distinct import distinct_attn_mask, select_distinct, suppress_duplicates

__all__ = [
    "DDQDETR",
    "DenseQueryLoss",
    "distinct_attn_mask",
    "quality_focal_loss",
    "select_distinct",
    "suppress_duplicates",
    "top_k_assign",
]
