"""Lite-DINO R50 (SPEC §4): DINO 4-scale with the interleaved H3L1-(2+1)x3 encoder (FFN 2048
for the high-level tokens, 256 for the stride-8 tokens in the full layers) and key-aware
deformable attention (KDA) in the encoder and the decoder's cross-attention. Position encodings
as in the official code (temperature 20, no offset).

Other variants: ``model.encoder.num_high_levels=2`` (H2L2), ``model.encoder.high_updates=6
model.encoder.num_blocks=1`` ((6+1)x1). MSDA instead of KDA: build with ``key_aware=False``."""

from ...common.models.deformable import decoder, interleaved_encoder
from ...dino.models.dino_r50 import model

model.encoder = interleaved_encoder("H3L1-(2+1)x3", ffn_dim=2048, dropout=0.0)
model.decoder = decoder(ffn_dim=2048, dropout=0.0, dino=True, key_aware=True, refine_eps=1e-3)
# the official (IDEA) Lite-DETR code: sine encodings with temperature 20 and no offset
model.position_embedding.temperature = 20
model.position_embedding.offset = 0.0
