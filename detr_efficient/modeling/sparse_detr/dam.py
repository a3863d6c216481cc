"""Sparse DETR's decoder attention map (DAM): how much attention the decoder's deformable
cross-attention puts on each encoder token, splatting every sampling point's weight onto the
four tokens its bilinear interpolation reads."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["decoder_attention_map"]


def decoder_attention_map(
    samplings: Sequence[tuple[torch.Tensor, torch.Tensor]],
    shapes: Sequence[tuple[int, int]],
    num_tokens: int,
) -> torch.Tensor:
    """``[B, S]`` summed over layers, queries, heads and points.

    samplings: per decoder layer (locations ``[B, Q, H, L, P, 2]`` normalised (x, y), weights
    ``[B, Q, H, L, P]``); shapes: the (H_l, W_l) of the ``num_tokens`` = S tokens. A point
    at pixel ``(x W_l - 0.5, y H_l - 0.5)`` gives each of its four neighbours inside the
    map its bilinear coefficient times the weight, as ``grid_sample`` (zero padding,
    ``align_corners=False``) reads it.
    """
    if not samplings:
        raise ValueError("decoder_attention_map: no recorded decoder sampling")
    batch = samplings[0][0].shape[0]
    device = samplings[0][0].device
    dam = torch.zeros(batch, num_tokens, dtype=torch.float32, device=device)
    start = 0
    for level, (height, width) in enumerate(shapes):
        for locations, weights in samplings:
            loc = locations[:, :, :, level].float()  # [B, Q, H, P, 2]
            weight = weights[:, :, :, level].float()  # [B, Q, H, P]
            x = loc[..., 0] * width - 0.5
            y = loc[..., 1] * height - 0.5
            x0, y0 = x.floor(), y.floor()
            fx, fy = x - x0, y - y0
            for dx, dy, coef in (
                (0, 0, (1 - fx) * (1 - fy)),
                (1, 0, fx * (1 - fy)),
                (0, 1, (1 - fx) * fy),
                (1, 1, fx * fy),
            ):
                xi, yi = x0 + dx, y0 + dy
                inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                index = start + (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long()
                dam.scatter_add_(1, index.flatten(1), (weight * coef * inside).flatten(1))
        start += height * width
    if start != num_tokens:
        raise ValueError(
            f"decoder_attention_map: shapes cover {start} tokens, expected {num_tokens}"
        )
    return dam
