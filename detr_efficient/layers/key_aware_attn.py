"""Key-aware deformable attention (Lite DETR's KDA) as a module."""

from __future__ import annotations

import torch
from torch import nn

from ._deformable import DeformableAttentionBase, init_xavier, resolve_op

QUERY_INITS = ("xavier", "zeros")


class KeyAwareDeformableAttention(DeformableAttentionBase):
    """Lite DETR's key-aware deformable attention: sampling as in Deformable DETR, but the
    weights of a head's L*P sampled points are ``softmax(q · k / sqrt(D))`` of the projected
    query and the keys sampled at the same points (no ``attention_weights`` linear).

    Parameters: ``sampling_offsets`` (C → H*L*P*2, layout ``[H, L, P, (x, y)]``),
    ``query_proj`` (C → C, applied to query + query_pos), ``value_proj`` and
    ``output_proj`` (C → C), and ``key_proj`` (C → C) only with ``proj_key=True``; otherwise
    the keys are the projected values themselves (Lite DETR's default).

    ``query_init``: ``"xavier"`` (the official code) or ``"zeros"``: the query projection
    starts at zero, so every head's first weights are uniform over its L*P points, as
    Deformable DETR's zero-initialised ``attention_weights`` make MSDA's (from scratch on the
    shapes dataset, Lite-DINO gained 5.7 and 2.4 AP with it in two seeds: BENCHMARKS.md).

    ``forward(query [B, Q, C], value [B, S, C] | None, query_pos, reference_points
    [B, Q, L, 2 | 4], spatial_shapes int64 [L, 2], level_start_index int64 [L],
    key_padding_mask bool [B, S] (zeroes padded keys and values), identity) -> [B, Q, C]``
    (``[Q, B, C]`` / ``[S, B, C]`` with ``batch_first=False``). Runs
    ``ops.key_aware_deform_attn``, or its reference with ``use_reference=True``.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_levels: int = 4,
        num_points: int = 4,
        dropout: float = 0.0,
        batch_first: bool = True,
        proj_key: bool = False,
        use_reference: bool = False,
        query_init: str = "xavier",
    ) -> None:
        if query_init not in QUERY_INITS:
            raise ValueError(
                f"KeyAwareDeformableAttention: 'query_init' must be one of {QUERY_INITS}, "
                f"got {query_init!r}"
            )
        super().__init__(
            embed_dim,
            num_heads,
            num_levels,
            num_points,
            dropout,
            batch_first,
            value_dim=embed_dim,
            use_reference=use_reference,
        )
        self.proj_key = proj_key
        self.query_init = query_init
        self.query_proj = nn.Linear(embed_dim, embed_dim)
        self.key_proj = nn.Linear(embed_dim, embed_dim) if proj_key else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._reset_common()
        if self.query_init == "zeros":
            nn.init.zeros_(self.query_proj.weight)
            nn.init.zeros_(self.query_proj.bias)
        else:
            init_xavier(self.query_proj)
        if self.key_proj is not None:
            init_xavier(self.key_proj)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, proj_key={self.proj_key}, query_init={self.query_init}"

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
        dtype = projected.dtype
        values = self._heads(projected)
        keys = values  # the very same tensor: the op may sample it once
        if self.key_proj is not None:
            key = self.key_proj(value)
            if key_padding_mask is not None:
                key = key.masked_fill(key_padding_mask[..., None], 0.0)
            keys = self._heads(key.to(dtype))
        op = resolve_op("key_aware_deform_attn", self.use_reference)
        return op(
            self._heads(self.query_proj(query).to(dtype)),
            keys,
            values,
            spatial_shapes,
            level_start_index,
            locations,
        )
