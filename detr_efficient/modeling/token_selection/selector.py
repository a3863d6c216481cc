"""Foreground token scoring (Focus-DETR's foreground token selector, Sparse DETR's scoring
network): one logit per encoder token saying how likely it is to lie on an object."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..multiscale import TokenMap

__all__ = ["ForegroundScorer", "ForegroundTokenSelector"]


class ForegroundScorer(nn.Module):
    """Sparse DETR's mask predictor: ``LayerNorm → Linear(C, C) → GELU``, half the channels
    kept per token and half replaced by their mean over the valid tokens of the input, then
    an MLP ``C → C/2 → C/4 → 1`` (GELU).

    ``forward(x [B, N, C], valid bool [B, N])`` → logits ``[B, N]``.
    """

    def __init__(self, embed_dim: int = 256) -> None:
        super().__init__()
        if embed_dim % 4:
            raise ValueError(
                f"ForegroundScorer: 'embed_dim' must be a multiple of 4, got {embed_dim}"
            )
        self.embed = nn.Sequential(
            nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim), nn.GELU()
        )
        self.head = nn.Sequential(
            nn.Linear(embed_dim, embed_dim // 2),
            nn.GELU(),
            nn.Linear(embed_dim // 2, embed_dim // 4),
            nn.GELU(),
            nn.Linear(embed_dim // 4, 1),
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        local, glob = z.chunk(2, dim=-1)
        weights = valid.to(z.dtype)[..., None]
        mean = (glob * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
        z = torch.cat([local, mean.expand_as(glob)], dim=-1)
        return self.head(z).squeeze(-1)


class ForegroundTokenSelector(nn.Module):
    """Foreground logits ``[B, S]`` for every token of a ``TokenMap``.

    ``top_down=True`` (Focus-DETR): levels are scored from the coarsest to the finest; a finer
    level's tokens are modulated by the coarser level's score map before scoring,
    ``T_l ← T_l + α_l · T_l · up(S_{l+1})`` (bilinear, corners aligned; learnable scalars
    ``alpha`` ``[L - 1]``, one per finer level), and the mean of the scorer's global half
    is taken per level. ``top_down=False`` (Sparse DETR): one pass over all tokens.

    ``forward(x [B, S, C], token_map)``: ``x`` are the tokens to score (Focus-DETR scores the
    projected backbone tokens). Padding tokens get a logit too: callers pass
    ``~token_map.padding_mask`` as the valid mask of every selection and loss.
    """

    def __init__(self, embed_dim: int = 256, num_levels: int = 4, top_down: bool = True) -> None:
        super().__init__()
        self.scorer = ForegroundScorer(embed_dim)
        self.top_down = top_down
        self.num_levels = num_levels
        if top_down:
            self.alpha = nn.Parameter(torch.empty(num_levels - 1))
            nn.init.uniform_(self.alpha, -0.3, 0.3)

    def forward(self, x: torch.Tensor, token_map: TokenMap) -> torch.Tensor:
        valid = ~token_map.padding_mask
        if not self.top_down:
            return self.scorer(x, valid)
        shapes = token_map.shapes
        if len(shapes) != self.num_levels:
            raise ValueError(
                f"ForegroundTokenSelector: built for {self.num_levels} levels, the token map "
                f"has {len(shapes)}"
            )
        sizes = [h * w for h, w in shapes]
        tokens = x.split(sizes, dim=1)
        masks = valid.split(sizes, dim=1)
        scores: list[torch.Tensor] = [None] * len(shapes)  # type: ignore[list-item]
        coarser = None
        for level in reversed(range(len(shapes))):
            level_tokens = tokens[level]
            if coarser is not None:
                height, width = shapes[level]
                up = F.interpolate(
                    coarser, size=(height, width), mode="bilinear", align_corners=True
                )
                up = up.flatten(1)[..., None].to(level_tokens.dtype)  # [B, N_l, 1]
                level_tokens = level_tokens + self.alpha[level] * level_tokens * up
            score = self.scorer(level_tokens, masks[level])  # [B, N_l]
            scores[level] = score
            coarser = score.reshape(score.shape[0], 1, *shapes[level]).float()
        return torch.cat(scores, dim=1)
