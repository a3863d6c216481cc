"""Encoders that update only a per-image top-k subset of the tokens (Focus-DETR, Sparse DETR):
each layer gathers its kept tokens, runs them as queries against the whole map and scatters
them back. Selection, gather and scatter are the extension's batched ops."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from detr_efficient import ops

from ..multiscale import TokenMap, encoder_reference_points

__all__ = [
    "DualAttention",
    "SelectiveEncoderLayer",
    "SelectiveTokenEncoder",
    "SparseEncoding",
    "keep_counts",
]

SCORE_PRODUCTS = ("probabilities", "logits")
VALUE_SOURCES = ("updated", "original")


def keep_counts(valid_counts: torch.Tensor, ratio: float) -> torch.Tensor:
    """Tokens kept per image: ``min(n_b, floor(ratio * n_b) + 1)`` for ``n_b`` valid tokens
    (int64 ``[B]``), the official code's count for the first layer (for later layers it
    rounds the previous layer's count, README); 0 for an image without valid tokens."""
    kept = torch.floor(valid_counts.double() * ratio).long() + 1
    return torch.minimum(kept, valid_counts)


class DualAttention(nn.Module):
    """Focus-DETR's self-attention among the most object-like kept tokens: the ``top_k`` by
    multi-category score attend to each other (multi-head attention, residual, LayerNorm)
    and are written back into the kept set.

    ``forward(query [B, K, C], query_pos [B, K, C], scores [B, K], valid bool [B, K])`` →
    ``[B, K, C]``; invalid rows are never selected.
    """

    def __init__(
        self, embed_dim: int = 256, num_heads: int = 8, top_k: int = 300, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if top_k < 1:
            raise ValueError(f"DualAttention: 'top_k' must be >= 1, got {top_k}")
        self.top_k = top_k
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        scores: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        width = min(self.top_k, int(query.shape[1]))
        index = ops.select_topk(scores.float(), width, valid=valid, max_k=width)
        selected, pos = ops.gather_tokens_many([query, query_pos], index, check_index=False)
        q = k = selected + pos
        attended = self.attn(q, k, selected, key_padding_mask=index < 0, need_weights=False)[0]
        updated = self.norm(selected + self.dropout(attended))
        return ops.scatter_tokens(query, index, updated.to(query.dtype), check_index=False)


class SelectiveEncoderLayer(nn.Module):
    """An encoder layer for a kept subset of tokens: optional ``dual_attention`` among them,
    then ``layer`` (a ``DeformableEncoderLayer``: deformable attention from the kept tokens
    into the full map ``value``, then the FFN).

    ``forward(query [B, K, C], query_pos [B, K, C], reference_points [B, K, L, 2], valid
    [B, K], scores [B, K] | None, value [B, S, C], spatial_shapes, level_start_index,
    padding_mask [B, S])`` → ``[B, K, C]``.
    """

    def __init__(self, layer: nn.Module, dual_attention: DualAttention | None = None) -> None:
        super().__init__()
        self.layer = layer
        self.dual_attention = dual_attention

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
        valid: torch.Tensor,
        scores: torch.Tensor | None,
        value: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor,
    ) -> torch.Tensor:
        if self.dual_attention is not None:
            if scores is None:
                raise ValueError("SelectiveEncoderLayer: dual attention needs the token scores")
            query = self.dual_attention(query, query_pos, scores, valid)
        return self.layer(
            query,
            query_pos,
            reference_points,
            spatial_shapes,
            level_start_index,
            padding_mask,
            value=value,
        )


@dataclass
class SparseEncoding:
    """memory ``[B, S, C]``; kept: per layer the kept token indices ``[B, K_l]`` (-1 past an
    image's count), best first; counts: per layer the kept count per image ``[B]``."""

    memory: torch.Tensor
    kept: list[torch.Tensor]
    counts: list[torch.Tensor]


class SelectiveTokenEncoder(nn.Module):
    """``num_layers`` copies of ``layer`` (a ``SelectiveEncoderLayer``); layer ``i`` updates
    each image's ``keep_counts(n_b, keep_ratios[i])`` best valid tokens by foreground score.

    - Focus-DETR: ``keep_ratios = ρ × cascade`` (0.5 × [1, .8, .6, .6, .4, .2]) and dual
      attention, whose multi-category score is the foreground score times the best class
      score of ``class_head`` on the kept tokens: ``score_product="probabilities"`` (the
      paper: sigmoid × sigmoid) or ``"logits"`` (the official code: raw logit × raw logit).
    - Sparse DETR: the same ρ in every layer, no dual attention.
    - ``value_source``: the deformable attention samples the ``"updated"`` token map (the
      paper, Sparse DETR) or the ``"original"`` encoder input (the official Focus-DETR code).

    ``forward(token_map, scores [B, S], class_head=None)`` → ``SparseEncoding``.
    """

    def __init__(
        self,
        layer: nn.Module,
        keep_ratios: Sequence[float],
        score_product: str = "probabilities",
        value_source: str = "updated",
    ) -> None:
        super().__init__()
        if not keep_ratios:
            raise ValueError("SelectiveTokenEncoder: 'keep_ratios' needs one ratio per layer")
        for ratio in keep_ratios:
            if not 0.0 < ratio <= 1.0:
                raise ValueError(
                    "SelectiveTokenEncoder: keep ratios must lie in (0, 1], got "
                    f"{list(keep_ratios)}"
                )
        if score_product not in SCORE_PRODUCTS:
            raise ValueError(
                f"SelectiveTokenEncoder: 'score_product' must be one of {SCORE_PRODUCTS}, got "
                f"{score_product!r}"
            )
        if value_source not in VALUE_SOURCES:
            raise ValueError(
                f"SelectiveTokenEncoder: 'value_source' must be one of {VALUE_SOURCES}, got "
                f"{value_source!r}"
            )
        self.keep_ratios = [float(r) for r in keep_ratios]
        self.score_product = score_product
        self.value_source = value_source
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in keep_ratios)

    def forward(
        self,
        token_map: TokenMap,
        scores: torch.Tensor,
        class_head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> SparseEncoding:
        tokens = token_map.tokens
        if scores.shape != tokens.shape[:2]:
            raise ValueError(
                f"SelectiveTokenEncoder: 'scores' must be [B, S] = {list(tokens.shape[:2])}, "
                f"got {list(scores.shape)}"
            )
        valid = ~token_map.padding_mask
        valid_counts = valid.sum(1)
        counts = [keep_counts(valid_counts, ratio) for ratio in self.keep_ratios]
        widths = torch.stack([c.amax() for c in counts]).tolist() if len(tokens) else []
        reference_points = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
        ranking = scores.detach().float()
        original = tokens
        kept = []
        for i, layer in enumerate(self.layers):
            width = widths[i] if widths else 0
            index = ops.select_topk(ranking, counts[i], valid=valid, max_k=width)
            query, pos, points, fg = ops.gather_tokens_many(
                [tokens, token_map.pos, reference_points, ranking], index, check_index=False
            )
            row_valid = index >= 0
            mc_scores = None
            if layer.dual_attention is not None:
                mc_scores = self._multi_category_scores(fg, query, class_head)
            value = original if self.value_source == "original" else tokens
            updated = layer(
                query,
                pos,
                points,
                row_valid,
                mc_scores,
                value,
                token_map.spatial_shapes,
                token_map.level_start_index,
                token_map.padding_mask,
            )
            tokens = ops.scatter_tokens(tokens, index, updated.to(tokens.dtype), check_index=False)
            kept.append(index)
        return SparseEncoding(tokens, kept, counts)

    def _multi_category_scores(
        self,
        foreground: torch.Tensor,
        query: torch.Tensor,
        class_head: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """Foreground score × best class score ``[B, K]`` (ranking only: no gradient)."""
        if class_head is None:
            raise ValueError("SelectiveTokenEncoder: dual attention needs 'class_head'")
        with torch.no_grad():
            class_logits = class_head(query).float().amax(-1)
        if self.score_product == "logits":
            return foreground * class_logits
        return foreground.sigmoid() * class_logits.sigmoid()
