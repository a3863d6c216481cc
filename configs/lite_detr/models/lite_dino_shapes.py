"""A small Lite-DINO for the synthetic shapes dataset on a CPU: the shapes DINO with an
H3L1-(2+1)x1 encoder (one high-level layer, one full layer) and KDA.

Every KDA's query projection starts at zero (``query_init="zeros"``: uniform first weights,
as MSDA's), not Xavier as in the official code: from scratch on shapes that gave 37.4 and
32.9 AP (seeds 42 and 1) against 31.7 and 30.5 (BENCHMARKS.md, twelfth session)."""

from ...common.models.deformable import decoder, interleaved_encoder
from ...dino.models.dino_shapes import model

model.encoder = interleaved_encoder(
    "H3L1-(2+1)x1", embed_dim=128, num_heads=4, ffn_dim=512, low_ffn_dim=128, dropout=0.0
)
model.decoder = decoder(
    embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=3, dino=True, key_aware=True
)
for attention in (
    model.encoder.high_layer.self_attn,
    model.encoder.full_layer.self_attn,
    model.decoder.layer.cross_attn,
):
    attention.query_init = "zeros"
