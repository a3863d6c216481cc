"""The deformable transformer encoder: a stack of encoder layers over the token map."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .multiscale import TokenMap, encoder_reference_points

__all__ = ["DeformableTransformerEncoder"]


class DeformableTransformerEncoder(nn.Module):
    """``num_layers`` copies of ``layer`` (e.g. ``DeformableEncoderLayer``), each token
    attending around its own position on every level. ``forward(TokenMap) → [B, S, C]``."""

    def __init__(self, layer: nn.Module, num_layers: int = 6) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(
                f"DeformableTransformerEncoder: 'num_layers' must be >= 1, got {num_layers}"
            )
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, token_map: TokenMap) -> torch.Tensor:
        reference_points = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
        tokens = token_map.tokens
        for layer in self.layers:
            tokens = layer(
                tokens,
                token_map.pos,
                reference_points,
                token_map.spatial_shapes,
                token_map.level_start_index,
                token_map.padding_mask,
            )
        return tokens
