"""The shapes Focus-DETR with DDQ-DETR's distinct and dense queries (the shapes DDQ-DETR's
settings)."""

from detr_efficient.modeling.combined import FocusDDQDETR

from ...ddq.models.ddq_detr_shapes import model as ddq
from ...focus_detr.models.focus_detr_shapes import model
from .ddq_queries import take_ddq_queries

model._target_ = FocusDDQDETR
take_ddq_queries(model, ddq)
