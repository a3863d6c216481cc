"""A small Focus-DETR for the synthetic shapes dataset on a CPU: the shapes DINO with a
selector, kept ratios 0.5 × [1.0, 0.6] over its 2 encoder layers, dual attention over the
top 50 tokens, and the paper's scale ranges divided by 4 for the 256-pixel images."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import FocusDETR
from detr_efficient.modeling.focus_detr import PAPER_SCALE_RANGES
from detr_efficient.modeling.token_selection import ForegroundTokenSelector

from ...common.models.deformable import selective_encoder
from ...dino.models.dino_shapes import model

model._target_ = FocusDETR
model.selector = L(ForegroundTokenSelector)(embed_dim="${..embed_dim}", num_levels=4, top_down=True)
model.encoder = selective_encoder(
    keep_ratios=[0.5, 0.3],
    embed_dim=128,
    num_heads=4,
    ffn_dim=512,
    dropout=0.0,
    dual_attention_top_k=50,
)
model.strides = (8, 16, 32, 64)
model.scale_ranges = tuple((lo if lo < 0 else lo / 4, hi / 4) for lo, hi in PAPER_SCALE_RANGES)
model.foreground_weight = 1.5
