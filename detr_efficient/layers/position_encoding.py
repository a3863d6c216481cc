"""Sine position encodings: for feature maps (from the padding mask) and for boxes or points
(the query positions of DINO's decoder, the proposal embeddings of Deformable DETR)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine", "sine_embed_coords"]


def _frequencies(num_feats: int, temperature: float, device) -> torch.Tensor:
    """``[num_feats]``: ``temperature ** (2 * (i // 2) / num_feats)``."""
    index = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)


def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
    """``[..., F]`` angles → ``[..., F]``: sin of the even features, cos of the odd ones,
    interleaved as (sin_0, cos_1, sin_2, cos_3, ...)."""
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)


def sine_embed_coords(
    coords: torch.Tensor,
    num_feats: int = 128,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    exchange_xy: bool = True,
) -> torch.Tensor:
    """Normalised coordinates ``[..., n]`` (x, y[, w, h]) → ``[..., n * num_feats]`` in float32.

    Each coordinate is scaled by ``scale`` and embedded with ``num_feats`` sine/cosine
    features. ``exchange_xy=True`` puts y before x (DINO's query positions: y, x, w, h);
    ``False`` keeps the input order (Deformable DETR's proposal embedding).
    """
    if coords.shape[-1] < 1 or num_feats % 2:
        raise ValueError(
            f"sine_embed_coords: need coords [..., n>=1] and an even num_feats, got "
            f"{list(coords.shape)} and {num_feats}"
        )
    freqs = _frequencies(num_feats, temperature, coords.device)
    angles = coords.float()[..., None] * scale / freqs  # [..., n, F]
    embeds = list(_interleave_sin_cos(angles).unbind(-2))
    if exchange_xy and len(embeds) >= 2:
        embeds[0], embeds[1] = embeds[1], embeds[0]
    return torch.cat(embeds, dim=-1)


class PositionEmbeddingSine(nn.Module):
    """DETR's 2-D sine encoding of a feature map: padding mask ``[B, H, W]`` (True = padding)
    → ``[B, 2 * num_feats, H, W]`` (y features first, then x), in float32.

    With ``normalize`` the cumulative row/column counts of valid pixels are shifted by
    ``offset`` and divided by the last one (plus ``eps``) before scaling by ``scale``, so the
    encoding spans the valid image whatever the padding.
    """

    def __init__(
        self,
        num_feats: int = 128,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float = 2 * math.pi,
        offset: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if num_feats <= 0 or num_feats % 2:
            raise ValueError(f"PositionEmbeddingSine: 'num_feats' must be even, got {num_feats}")
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.offset = offset
        self.eps = eps

    def extra_repr(self) -> str:
        return (
            f"num_feats={self.num_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, offset={self.offset}"
        )

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        if mask.dim() != 3 or mask.dtype != torch.bool:
            raise ValueError(
                f"PositionEmbeddingSine: 'mask' must be bool [B, H, W], got {mask.dtype} "
                f"{list(mask.shape)}"
            )
        valid = (~mask).float()
        y = valid.cumsum(1)
        x = valid.cumsum(2)
        if self.normalize:
            y = (y + self.offset) / (y[:, -1:, :] + self.eps) * self.scale
            x = (x + self.offset) / (x[:, :, -1:] + self.eps) * self.scale
        freqs = _frequencies(self.num_feats, self.temperature, mask.device)
        pos_y = _interleave_sin_cos(y[..., None] / freqs)
        pos_x = _interleave_sin_cos(x[..., None] / freqs)
        return torch.cat([pos_y, pos_x], dim=-1).permute(0, 3, 1, 2)
