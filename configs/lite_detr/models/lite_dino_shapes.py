"""A small Lite-DINO for the synthetic shapes dataset on a CPU: the shapes DINO with an
H3L1-(2+1)x1 encoder (one high-level layer, one full layer) and KDA."""

from ...common.models.deformable import decoder, interleaved_encoder
from ...dino.models.dino_shapes import model

model.encoder = interleaved_encoder(
    "H3L1-(2+1)x1", embed_dim=128, num_heads=4, ffn_dim=512, low_ffn_dim=128, dropout=0.0
)
model.decoder = decoder(
    embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=3, dino=True, key_aware=True
)
