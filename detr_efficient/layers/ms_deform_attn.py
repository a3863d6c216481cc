"""Multi-scale deformable attention (Deformable DETR) as a module."""

from __future__ import annotations

import torch
from torch import nn

from ._deformable import DeformableAttentionBase, resolve_op


class MultiScaleDeformableAttention(DeformableAttentionBase):
    """Deformable DETR's attention: each query samples ``num_points`` points per head and
    level around its reference point(s) and sums them with learned softmax weights.

    Parameters: ``sampling_offsets`` (C → H*L*P*2, layout ``[H, L, P, (x, y)]``),
    ``attention_weights`` (C → H*L*P, softmax over L*P per head), ``value_proj``
    (C → C*value_proj_ratio), ``output_proj`` (back to C).

    ``forward(query [B, Q, C], value [B, S, C] | None, query_pos, reference_points
    [B, Q, L, 2 | 4], spatial_shapes int64 [L, 2], level_start_index int64 [L],
    key_padding_mask bool [B, S], identity) -> [B, Q, C]`` (``[Q, B, C]`` / ``[S, B, C]``
    for query, value, query_pos, identity and the output with ``batch_first=False``).
    Runs ``ops.ms_deform_attn``, or its reference with ``use_reference=True``. With
    ``record_sampling = True`` each forward keeps its detached sampling locations and
    weights in ``recorded_sampling`` (Sparse DETR's decoder attention map reads them).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_levels: int = 4,
        num_points: int = 4,
        dropout: float = 0.0,
        batch_first: bool = True,
        value_proj_ratio: float = 1.0,
        use_reference: bool = False,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            num_levels,
            num_points,
            dropout,
            batch_first,
            value_dim=int(embed_dim * value_proj_ratio),
            use_reference=use_reference,
        )
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.record_sampling = False
        self.recorded_sampling: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_common()
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def _attend(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        projected: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        locations: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        batch, queries, _ = query.shape
        weights = self.attention_weights(query).reshape(batch, queries, self.num_heads, -1)
        weights = weights.softmax(dim=-1).view(*locations.shape[:-1])  # [B, Q, H, L, P]
        if self.record_sampling:
            self.recorded_sampling = (locations.detach(), weights.detach())
        op = resolve_op("ms_deform_attn", self.use_reference)
        return op(
            self._heads(projected),
            spatial_shapes,
            level_start_index,
            locations,
            weights,
        )
