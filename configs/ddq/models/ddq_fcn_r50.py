"""DDQ-FCN, ResNet-50 + FPN P3–P7, P6 from C5 as DDQ's ``add_extra_convs="on_input"``
(SPEC §5): FCOS-like GroupNorm head (4 convs per tower, class × objectness scores),
top 1000 points per level, class-agnostic NMS at 0.7, 300 distinct queries; one-to-one loss
(Hungarian, QFL β=2 + GIoU 2) on them and the one-to-many auxiliary loss (k=8) on the dense
queries. The paper: 41.5 AP at 12 epochs."""

from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7

from detr_efficient.modeling import DDQFCN
from detr_efficient.modeling.ddq import DenseHead, DenseQueryLoss
from detr_efficient.modeling.matcher import HungarianMatcher

from ...common.models.deformable import resnet


def dense_loss(top_k):
    matcher = L(HungarianMatcher)(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    return L(DenseQueryLoss)(matcher=matcher, top_k=top_k, beta=2.0, giou_weight=2.0)


model = L(DDQFCN)(
    backbone=L(FPN)(
        bottom_up=resnet(depth=50),
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        top_block=L(LastLevelP6P7)(in_channels=2048, out_channels=256, in_feature="res5"),
    ),
    head=L(DenseHead)(
        in_channels=256, num_classes="${..num_classes}", strides=(8, 16, 32, 64, 128), convs=4
    ),
    one_to_one_loss=dense_loss(top_k=1),
    one_to_many_loss=dense_loss(top_k=8),
    num_classes=80,
    candidates_per_level=1000,
    nms_iou=0.7,
    num_queries=300,
    num_detections=100,
)
