"""Focus-DETR R50 4-scale with DDQ-DETR's distinct and dense queries (the DDQ-DETR R50
settings: NMS at 0.8 over the proposals and between decoder layers, 1.5 × 900 dense
queries)."""

from detr_efficient.modeling.combined import FocusDDQDETR

from ...ddq.models.ddq_detr_r50 import model as ddq
from ...focus_detr.models.focus_detr_r50 import model
from .ddq_queries import take_ddq_queries

model._target_ = FocusDDQDETR
take_ddq_queries(model, ddq)
