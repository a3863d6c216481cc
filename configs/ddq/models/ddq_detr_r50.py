"""DDQ-DETR 4-scale R50 (SPEC §5): DINO-4scale R50 with distinct queries (class-agnostic NMS
at 0.8 over the encoder proposals, then the best 900; NMS at 0.8 between decoder layers) and
1350 dense queries trained one-to-many (QFL β=2 + GIoU 2, top-4 Hungarian). As in the official
(mmdetection) DDQ-DETR: one class / box head per decoder layer, and sine position encodings
with temperature 20 and no offset, so its checkpoints (``--source ddq-detr-mmdet``) load as is.
The backbone freezes its stem and res2 (mmdetection's ``frozen_stages=1``). Its
``inverse_sigmoid`` clamps at 1e-3 in the refinement and the denoising boxes (DINO's) but
at 1e-5 for the predicted boxes (mmdetection's head)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DDQDETR
from detr_efficient.modeling.ddq import DenseQueryLoss
from detr_efficient.modeling.matcher import HungarianMatcher

from ...dino.models.dino_r50 import model

model._target_ = DDQDETR
model.distinct_iou = 0.8
model.decoder_distinct_iou = 0.8
model.dense_ratio = 1.5
model.share_heads = False
model.box_eps = 1e-5
model.position_embedding.temperature = 20
model.position_embedding.offset = 0.0
model.dense_loss = L(DenseQueryLoss)(
    matcher=L(HungarianMatcher)(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0),
    top_k=4,
    beta=2.0,
    class_weight=1.0,
    giou_weight=2.0,
)
