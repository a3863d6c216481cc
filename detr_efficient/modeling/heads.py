"""Prediction heads and the initialisation the deformable DETRs share."""

from __future__ import annotations

import math

from torch import nn

from detr_efficient.layers import MLP, KeyAwareDeformableAttention, MultiScaleDeformableAttention

__all__ = ["box_head", "class_head", "reset_transformer_parameters"]


def class_head(embed_dim: int, num_classes: int, prior_prob: float = 0.01) -> nn.Linear:
    """``Linear(embed_dim, num_classes)`` whose initial sigmoid output is ``prior_prob``."""
    head = nn.Linear(embed_dim, num_classes)
    nn.init.constant_(head.bias, -math.log((1 - prior_prob) / prior_prob))
    return head


def box_head(embed_dim: int) -> MLP:
    """3-layer MLP → 4 box deltas (inverse-sigmoid space), starting at zero."""
    head = MLP(embed_dim, embed_dim, 4, 3)
    nn.init.zeros_(head.layers[-1].weight)
    nn.init.zeros_(head.layers[-1].bias)
    return head


def reset_transformer_parameters(*modules: nn.Module) -> None:
    """Xavier-uniform for every matrix of ``modules``, then the deformable attention modules'
    own initialisation (sampling-offset directions, zero attention weights)."""
    for module in modules:
        for parameter in module.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        for sub in module.modules():
            if isinstance(sub, (MultiScaleDeformableAttention, KeyAwareDeformableAttention)):
                sub.reset_parameters()
