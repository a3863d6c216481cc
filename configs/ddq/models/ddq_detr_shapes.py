"""A small DDQ-DETR for the synthetic shapes dataset on a CPU: the shapes DINO with distinct
queries and 150 dense queries, and DINO's code's losses (class weight 1, the encoder loss with
classes and on the distinct queries only), on which its shapes numbers were measured."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DDQDETR
from detr_efficient.modeling.ddq import DenseQueryLoss
from detr_efficient.modeling.matcher import HungarianMatcher

from ...common.models.deformable import criterion
from ...dino.models.dino_shapes import model

model._target_ = DDQDETR
model.criterion = criterion(class_weight=1.0)
model.encoder_loss_on = "selected"
model.distinct_iou = 0.8
model.decoder_distinct_iou = 0.8
model.dense_ratio = 1.5
model.dense_loss = L(DenseQueryLoss)(
    matcher=L(HungarianMatcher)(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0), top_k=4
)
