"""Building blocks on top of ``ops``: attention modules, transformer layers, position
encodings, MLPs, box utilities. Depends on torch and ``detr_efficient.ops`` only (never on
``modeling``)."""

from . import box_ops
from .key_aware_attn import KeyAwareDeformableAttention
from .mlp import FFN, MLP
from .ms_deform_attn import MultiScaleDeformableAttention
from .position_encoding import PositionEmbeddingSine, sine_embed_coords
from .transformer_layers import DeformableDecoderLayer, DeformableEncoderLayer

__all__ = [
    "FFN",
    "MLP",
    "DeformableDecoderLayer",
    "DeformableEncoderLayer",
    "KeyAwareDeformableAttention",
    "MultiScaleDeformableAttention",
    "PositionEmbeddingSine",
    "box_ops",
    "sine_embed_coords",
]
