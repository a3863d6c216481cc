"""Lite DETR: the deltas over Deformable DETR and DINO (an interleaved encoder; key-aware
deformable attention is ``layers.KeyAwareDeformableAttention``). A Lite detector is the
baseline's meta-architecture with these parts swapped in by its config."""

from .encoder import InterleavedEncoder, SplitFFNEncoderLayer, interleaved_schedule, parse_variant

__all__ = ["InterleavedEncoder", "SplitFFNEncoderLayer", "interleaved_schedule", "parse_variant"]
