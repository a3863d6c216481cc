"""The multi-scale token map shared by every deformable DETR: padding masks per level, the
flattened ``[B, S, C]`` tokens with their level bookkeeping, valid ratios and the encoder's
reference points."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["TokenMap", "encoder_reference_points", "flatten_levels", "level_masks"]


@dataclass
class TokenMap:
    """Flattened multi-scale features.

    tokens ``[B, S, C]``, pos ``[B, S, C]`` (position + level embedding), padding_mask bool
    ``[B, S]`` (True = padding), spatial_shapes int64 ``[L, 2]`` (H_l, W_l), level_start_index
    int64 ``[L]``, valid_ratios ``[B, L, 2]`` (valid fraction of each level's width, height),
    shapes: the same (H_l, W_l) as Python ints.
    """

    tokens: torch.Tensor
    pos: torch.Tensor
    padding_mask: torch.Tensor
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    valid_ratios: torch.Tensor
    shapes: list[tuple[int, int]]


def level_masks(mask: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Image padding mask bool ``[B, H, W]`` → one bool ``[B, H_l, W_l]`` per level (nearest)."""
    return [
        F.interpolate(mask[:, None].float(), size=size, mode="nearest")[:, 0].bool()
        for size in sizes
    ]


def _valid_ratios(mask: torch.Tensor) -> torch.Tensor:
    """bool ``[B, H, W]`` → ``[B, 2]``: fraction of valid columns and rows (w, h)."""
    _, height, width = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / height
    valid_w = (~mask[:, 0, :]).sum(1).float() / width
    return torch.stack([valid_w, valid_h], dim=-1)


def flatten_levels(
    features: list[torch.Tensor],
    masks: list[torch.Tensor],
    positions: list[torch.Tensor],
    level_embed: torch.Tensor,
) -> TokenMap:
    """features ``[B, C, H_l, W_l]``, masks ``[B, H_l, W_l]``, positions ``[B, C, H_l, W_l]``
    and level_embed ``[L, C]`` → ``TokenMap``."""
    if not len(features) == len(masks) == len(positions) == level_embed.shape[0]:
        raise ValueError(
            f"flatten_levels: got {len(features)} feature maps, {len(masks)} masks, "
            f"{len(positions)} position maps and {level_embed.shape[0]} level embeddings"
        )
    shapes = [(int(f.shape[2]), int(f.shape[3])) for f in features]
    tokens = torch.cat([f.flatten(2).transpose(1, 2) for f in features], dim=1)
    pos = torch.cat(
        [
            p.flatten(2).transpose(1, 2).to(tokens.dtype) + level_embed[i].to(tokens.dtype)
            for i, p in enumerate(positions)
        ],
        dim=1,
    )
    padding_mask = torch.cat([m.flatten(1) for m in masks], dim=1)
    device = tokens.device
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64, device=device)
    sizes = [h * w for h, w in shapes]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    level_start_index = torch.tensor(starts, dtype=torch.int64, device=device)
    valid_ratios = torch.stack([_valid_ratios(m) for m in masks], dim=1)
    return TokenMap(
        tokens, pos, padding_mask, spatial_shapes, level_start_index, valid_ratios, shapes
    )


def encoder_reference_points(
    shapes: list[tuple[int, int]], valid_ratios: torch.Tensor
) -> torch.Tensor:
    """Each token's pixel centre, normalised by its level's valid size, projected onto every
    level: ``[B, S, L, 2]`` (x, y). Shapes are (H_l, W_l); valid_ratios ``[B, L, 2]``."""
    device = valid_ratios.device
    points = []
    for level, (height, width) in enumerate(shapes):
        ys, xs = torch.meshgrid(
            torch.arange(height, dtype=torch.float32, device=device) + 0.5,
            torch.arange(width, dtype=torch.float32, device=device) + 0.5,
            indexing="ij",
        )
        ratio = valid_ratios[:, None, level]  # [B, 1, 2]
        x = xs.reshape(1, -1) / (ratio[..., 0] * width)
        y = ys.reshape(1, -1) / (ratio[..., 1] * height)
        points.append(torch.stack([x, y], dim=-1))
    reference = torch.cat(points, dim=1)  # [B, S, 2]
    return reference[:, :, None] * valid_ratios[:, None]
