"""Encoders that update only the most promising tokens (Focus-DETR, Sparse DETR): the
foreground scorer, the selective encoder and the DINO variant that runs them."""

from .detector import TokenSelectingDINO
from .encoder import DualAttention, SelectiveEncoderLayer, SelectiveTokenEncoder, keep_counts
from .selector import ForegroundScorer, ForegroundTokenSelector

__all__ = [
    "DualAttention",
    "ForegroundScorer",
    "ForegroundTokenSelector",
    "SelectiveEncoderLayer",
    "SelectiveTokenEncoder",
    "TokenSelectingDINO",
    "keep_counts",
]
