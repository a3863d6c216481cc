"""Lite Deformable DETR R50 (SPEC §4): the two-stage Deformable DETR with the interleaved
H3L1-(2+1)x3 encoder (FFN 1024 for the high-level tokens, 256 for the stride-8 tokens in the
full layers) and KDA in the encoder and the decoder's cross-attention."""

from ...common.models.deformable import decoder, interleaved_encoder
from ...deformable_detr.models.deformable_detr_r50 import model

model.encoder = interleaved_encoder("H3L1-(2+1)x3", ffn_dim=1024, dropout=0.1)
model.decoder = decoder(ffn_dim=1024, dropout=0.1, key_aware=True)
