"""DDQ (dense distinct queries): DDQ-DETR (the deltas over DINO) and DDQ-FCN."""

from .ddq_detr import DDQDETR
from .ddq_fcn import DDQFCN
from .dense_loss import DenseQueryLoss, quality_focal_loss, top_k_assign
from .distinct import distinct_attn_mask, select_distinct, suppress_duplicates
from .fcn_head import DenseHead, level_points

__all__ = [
    "DDQDETR",
    "DDQFCN",
    "DenseHead",
    "DenseQueryLoss",
    "distinct_attn_mask",
    "level_points",
    "quality_focal_loss",
    "select_distinct",
    "suppress_duplicates",
    "top_k_assign",
]
