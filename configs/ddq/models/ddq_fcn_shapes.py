"""A small DDQ-FCN for the synthetic shapes dataset on a CPU: slim from-scratch ResNet, FPN of
128 channels (P3–P7), 2 convs per head tower, 100 points per level, 100 distinct queries."""

from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7

from detr_efficient.modeling.ddq import DenseHead

from ...common.models.deformable import slim_resnet
from .ddq_fcn_r50 import model

model.backbone = L(FPN)(
    bottom_up=slim_resnet(widths=(32, 64, 128, 256)),
    in_features=["res3", "res4", "res5"],
    out_channels=128,
    top_block=L(LastLevelP6P7)(in_channels=128, out_channels=128, in_feature="p5"),
)
model.head = L(DenseHead)(
    in_channels=128,
    num_classes="${..num_classes}",
    strides=(8, 16, 32, 64, 128),
    convs=2,
    groups=16,
)
model.num_classes = 5
model.candidates_per_level = 100
model.num_queries = 100
