"""Sparse DETR: the deltas over DINO (decoder-attention-map supervision of the scorer)."""

from .dam import decoder_attention_map
from .sparse_detr import SparseDETR, dam_targets

__all__ = ["SparseDETR", "dam_targets", "decoder_attention_map"]
