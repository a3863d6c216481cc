"""A small DDQ R-CNN for the synthetic shapes dataset on a CPU: the shapes DDQ-FCN's 100
distinct queries refined by 2 stages of width 128 (4 heads, FFN 512)."""

from detr_efficient.modeling import DDQRCNN

from ...common.models.deformable import criterion
from .ddq_fcn_shapes import model

model._target_ = DDQRCNN
model.criterion = criterion(class_weight=2.0)
model.num_stages = 2
model.stage_heads = 4
model.stage_ffn_dim = 512
model.stage_dropout = 0.0
model.pooler_levels = 4
model.pooler_resolution = 7
