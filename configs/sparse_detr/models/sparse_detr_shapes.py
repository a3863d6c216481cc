"""A small Sparse DETR for the shapes dataset: the shapes DINO with a DAM-supervised scorer
and ρ=0.4 in both encoder layers (the token budget of ``focus_detr_shapes``)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import SparseDETR
from detr_efficient.modeling.token_selection import ForegroundTokenSelector

from ...common.models.deformable import selective_encoder
from ...dino.models.dino_shapes import model

model._target_ = SparseDETR
model.selector = L(ForegroundTokenSelector)(
    embed_dim="${..embed_dim}", num_levels=4, top_down=False
)
model.encoder = selective_encoder(
    keep_ratios=[0.4, 0.4], embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0
)
model.keep_ratio = 0.4
model.dam_weight = 1.0
