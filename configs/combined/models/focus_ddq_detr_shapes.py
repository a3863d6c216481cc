"""The shapes Focus-DETR with DDQ-DETR's distinct and dense queries (the shapes DDQ-DETR's
settings)."""

from detr_efficient.modeling.combined import FocusDDQDETR

from ...ddq.models.ddq_detr_shapes import model as ddq
from ...focus_detr.models.focus_detr_shapes import model

model._target_ = FocusDDQDETR
for key in ("dense_loss", "distinct_iou", "decoder_distinct_iou", "dense_ratio"):
    model[key] = ddq[key]
