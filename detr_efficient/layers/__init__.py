"""Building blocks on top of ``ops``: attention modules, transformer layers, position
encodings, MLPs. Depends on torch and ``detr_efficient.ops`` only (never on ``modeling``)."""
