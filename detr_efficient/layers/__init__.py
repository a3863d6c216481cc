"""Building blocks on top of ``ops``: attention modules, transformer layers, position
encodings, MLPs. Depends on torch and ``detr_efficient.ops`` only (never on ``modeling``)."""

from .key_aware_attn import KeyAwareDeformableAttention
from .ms_deform_attn import MultiScaleDeformableAttention

__all__ = ["KeyAwareDeformableAttention", "MultiScaleDeformableAttention"]
