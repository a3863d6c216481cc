"""DDQ (dense distinct queries): DDQ-DETR (the deltas over DINO), DDQ-FCN and DDQ R-CNN."""

from .ddq_detr import DDQDETR
from .ddq_fcn import DDQFCN
from .ddq_rcnn import DDQRCNN
from .dense_loss import DenseQueryLoss, quality_focal_loss, top_k_assign
from .distinct import distinct_attn_mask, select_distinct, suppress_duplicates
from .fcn_head import DenseHead, level_points
from .rcnn_stage import DynamicInteraction, RefinementStage, apply_box_deltas

__all__ = [
    "DDQDETR",
    "DDQFCN",
    "DDQRCNN",
    "DenseHead",
    "DenseQueryLoss",
    "DynamicInteraction",
    "RefinementStage",
    "apply_box_deltas",
    "distinct_attn_mask",
    "level_points",
    "quality_focal_loss",
    "select_distinct",
    "suppress_duplicates",
    "top_k_assign",
]
