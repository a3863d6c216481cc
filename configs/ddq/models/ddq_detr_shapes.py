"""A small DDQ-DETR for the synthetic shapes dataset on a CPU: the shapes DINO with distinct
queries and 150 dense queries."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DDQDETR
from detr_efficient.modeling.ddq import DenseQueryLoss
from detr_efficient.modeling.matcher import HungarianMatcher

from ...dino.models.dino_shapes import model

model._target_ = DDQDETR
model.distinct_iou = 0.8
model.decoder_distinct_iou = 0.8
model.dense_ratio = 1.5
model.dense_loss = L(DenseQueryLoss)(
    matcher=L(HungarianMatcher)(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0), top_k=4
)
