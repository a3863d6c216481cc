"""Lite DETR's interleaved encoder: the small high-level maps are updated often, the large
low-level map rarely, and the low-level tokens get a narrow FFN when they are updated."""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from detr_efficient.layers import DeformableEncoderLayer
from detr_efficient.layers.mlp import FFN

from ..multiscale import TokenMap, encoder_reference_points

__all__ = ["InterleavedEncoder", "SplitFFNEncoderLayer", "interleaved_schedule", "parse_variant"]

_VARIANT = re.compile(r"H(\d+)L(\d+)-\((\d+)\+(\d+)\)x(\d+)")


def parse_variant(name: str) -> dict[str, int]:
    """The paper's variant names → ``InterleavedEncoder`` arguments and the level count:
    ``"H3L1-(2+1)x3"`` → num_high_levels 3, num_levels 4, high_updates 2, low_updates 1,
    num_blocks 3."""
    match = _VARIANT.fullmatch(name.replace(" ", ""))
    if match is None:
        raise ValueError(f"Lite DETR variant {name!r} is not of the form 'H3L1-(2+1)x3'")
    high, low, high_updates, low_updates, blocks = map(int, match.groups())
    return {
        "num_high_levels": high,
        "num_levels": high + low,
        "high_updates": high_updates,
        "low_updates": low_updates,
        "num_blocks": blocks,
    }


class SplitFFNEncoderLayer(DeformableEncoderLayer):
    """Deformable self-attention over every token (one attention and norm shared by all),
    then an FFN of width ``ffn_dim`` for the high-level tokens and one of width
    ``low_ffn_dim`` for the ``num_low_tokens`` leading low-level tokens (the official Lite
    DETR's full layer: 2048 and 256 at R50).

    ``forward`` takes ``DeformableEncoderLayer``'s arguments (no ``value``: every token is
    a query) plus ``num_low_tokens``.
    """

    def __init__(
        self,
        self_attn: nn.Module,
        embed_dim: int = 256,
        ffn_dim: int = 2048,
        low_ffn_dim: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(self_attn, embed_dim, ffn_dim, dropout)
        self.low_ffn = FFN(embed_dim, low_ffn_dim, dropout)

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        padding_mask: torch.Tensor | None,
        num_low_tokens: int,
    ) -> torch.Tensor:
        """query ``[B, S, C]`` (every token, low-level ones first) → ``[B, S, C]``."""
        query = self.attend(
            query, query_pos, reference_points, spatial_shapes, level_start_index, padding_mask
        )
        low, high = query[:, :num_low_tokens], query[:, num_low_tokens:]
        return torch.cat([self.low_ffn(low), self.ffn(high)], dim=1)


def interleaved_schedule(num_blocks: int, high_updates: int, low_updates: int) -> list[str]:
    """Layer kinds of an "(A+B)xN" encoder: per block, the high-level tokens are updated
    ``A = high_updates`` times and the low-level tokens ``B = low_updates`` times, by
    ``A - B`` high-level layers followed by ``B`` full layers (a full layer updates both; the
    official code's reading, e.g. (2+1)x3 → high, full, high, full, high, full)."""
    if num_blocks < 1 or low_updates < 1 or high_updates < low_updates:
        raise ValueError(
            "InterleavedEncoder: need num_blocks >= 1 and high_updates >= low_updates >= 1, got "
            f"num_blocks={num_blocks}, high_updates={high_updates}, low_updates={low_updates}"
        )
    block = ["high"] * (high_updates - low_updates) + ["full"] * low_updates
    return block * num_blocks


class InterleavedEncoder(nn.Module):
    """Lite DETR's encoder, "H{num_high_levels}L{L - num_high_levels}-(A+B)xN".

    The coarsest ``num_high_levels`` levels are high-level (H3L1 at 4 levels: strides
    16/32/64, about a quarter of the tokens), the others low-level. A high-level layer
    (``high_layer``, a ``DeformableEncoderLayer``) updates the high-level tokens only, each
    sampling around its own position in every level of the current map (keys and values are
    all tokens); a full layer (``full_layer``, a ``SplitFFNEncoderLayer``) updates every
    token. The order is ``interleaved_schedule(num_blocks, high_updates, low_updates)``.
    ``forward(TokenMap) → [B, S, C]``.
    """

    def __init__(
        self,
        high_layer: nn.Module,
        full_layer: nn.Module,
        num_blocks: int = 3,
        high_updates: int = 2,
        low_updates: int = 1,
        num_high_levels: int = 3,
    ) -> None:
        super().__init__()
        if num_high_levels < 1:
            raise ValueError(
                f"InterleavedEncoder: 'num_high_levels' must be >= 1, got {num_high_levels}"
            )
        self.num_high_levels = num_high_levels
        self.schedule = interleaved_schedule(num_blocks, high_updates, low_updates)
        self.layers = nn.ModuleList(
            copy.deepcopy(high_layer if kind == "high" else full_layer) for kind in self.schedule
        )

    def extra_repr(self) -> str:
        return f"num_high_levels={self.num_high_levels}, schedule={self.schedule}"

    def num_low_tokens(self, shapes: list[tuple[int, int]]) -> int:
        """Tokens on the low-level (finest) levels, which lead the flattened map."""
        if self.num_high_levels >= len(shapes):
            raise ValueError(
                f"InterleavedEncoder: num_high_levels={self.num_high_levels} leaves no low-level "
                f"map among the {len(shapes)} levels"
            )
        return sum(h * w for h, w in shapes[: len(shapes) - self.num_high_levels])

    def updated_tokens(self, token_map: TokenMap) -> list[list[int]]:
        """Valid tokens each layer updates, per image: ``[[n_b per image] per layer]``."""
        valid = ~token_map.padding_mask
        split = self.num_low_tokens(token_map.shapes)
        counts = {"full": valid.sum(1).tolist(), "high": valid[:, split:].sum(1).tolist()}
        return [counts[kind] for kind in self.schedule]

    def forward(self, token_map: TokenMap) -> torch.Tensor:
        reference_points = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
        split = self.num_low_tokens(token_map.shapes)
        common = (token_map.spatial_shapes, token_map.level_start_index, token_map.padding_mask)
        tokens, pos = token_map.tokens, token_map.pos
        for kind, layer in zip(self.schedule, self.layers, strict=True):
            if kind == "full":
                tokens = layer(tokens, pos, reference_points, *common, num_low_tokens=split)
                continue
            high = layer(
                tokens[:, split:],
                pos[:, split:],
                reference_points[:, split:],
                *common,
                value=tokens,
            )
            tokens = torch.cat([tokens[:, :split], high], dim=1)
        return tokens
