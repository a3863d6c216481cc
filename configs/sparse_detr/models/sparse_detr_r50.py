"""Sparse DETR on DINO 4-scale, ResNet-50 (SPEC §3, the baseline Focus-DETR is compared
with): one scoring pass, ρ=0.3 of the tokens in every encoder layer, the scorer supervised by
the decoder attention map. ``model.keep_ratio`` and ``model.encoder.keep_ratios`` go
together (0.1 / 0.3 / 0.5 in the paper)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import SparseDETR
from detr_efficient.modeling.token_selection import ForegroundTokenSelector

from ...common.models.deformable import selective_encoder
from ...dino.models.dino_r50 import model

RHO = 0.3

model._target_ = SparseDETR
model.selector = L(ForegroundTokenSelector)(
    embed_dim="${..embed_dim}", num_levels=4, top_down=False
)
model.encoder = selective_encoder(keep_ratios=[RHO] * 6, ffn_dim=2048, dropout=0.0)
model.keep_ratio = RHO
model.dam_weight = 1.0
