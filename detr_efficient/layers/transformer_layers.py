"""Post-norm encoder and decoder layers of deformable DETRs. The attention modules are
arguments, so a method swaps them (key-aware attention, attention restricted to selected
tokens) without touching the layers."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import FFN

__all__ = ["DeformableDecoderLayer", "DeformableEncoderLayer"]


class DeformableEncoderLayer(nn.Module):
    """Deformable self-attention over the multi-scale token map, then an FFN.

    ``self_attn`` is a deformable attention module (``MultiScaleDeformableAttention``,
    ``KeyAwareDeformableAttention``, ...) whose output already holds the residual.
    """

    def __init__(
        self, self_attn: nn.Module, embed_dim: int = 256, ffn_dim: int = 1024, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.self_attn = self_attn
        self.norm = nn.LayerNorm(embed_dim)
        self.ffn = FFN(embed_dim, ffn_dim, dropout)

    def attend(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None,
        value: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The normalised attention output (before the FFN), arguments as in ``forward``."""
        query = self.self_attn(
            query,
            value=value,
            query_pos=query_pos,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            key_padding_mask=padding_mask,
        )
        return self.norm(query)

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None,
        value: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query ``[B, Q, C]`` (all tokens, or a selected subset when ``value`` ``[B, S, C]``
        is the full map), reference_points ``[B, Q, L, 2]`` → ``[B, Q, C]``."""
        return self.ffn(
            self.attend(
                query,
                query_pos,
                reference_points,
                spatial_shapes,
                level_start_index,
                padding_mask,
                value,
            )
        )


class DeformableDecoderLayer(nn.Module):
    """Self-attention among the queries, deformable cross-attention into the encoder memory,
    then an FFN (post-norm after each)."""

    def __init__(
        self,
        cross_attn: nn.Module,
        embed_dim: int = 256,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm_self = nn.LayerNorm(embed_dim)
        self.cross_attn = cross_attn
        self.norm_cross = nn.LayerNorm(embed_dim)
        self.ffn = FFN(embed_dim, ffn_dim, dropout)

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
        memory: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        memory_padding_mask: torch.Tensor | None,
        self_attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query and query_pos ``[B, Q, C]``, reference_points ``[B, Q, L, 2 | 4]``, memory
        ``[B, S, C]``, self_attn_mask bool ``[Q, Q]`` or ``[B * heads, Q, Q]`` (True = may not
        attend) → ``[B, Q, C]``."""
        q = k = query + query_pos
        attended = self.self_attn(q, k, query, attn_mask=self_attn_mask, need_weights=False)[0]
        query = self.norm_self(query + self.dropout(attended))
        query = self.cross_attn(
            query,
            value=memory,
            query_pos=query_pos,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            key_padding_mask=memory_padding_mask,
        )
        return self.ffn(self.norm_cross(query))
