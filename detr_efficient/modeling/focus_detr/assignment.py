"""Foreground labels for the token selector from ground-truth boxes (FCOS-style assignment by
box size per level) and the selector's loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..losses import sigmoid_focal_loss

__all__ = [
    "OFFICIAL_SCALE_RANGES",
    "PAPER_SCALE_RANGES",
    "foreground_loss",
    "foreground_targets",
    "token_centers",
]

INF = math.inf
# The official code: disjoint ranges of max(l, t, r, b) per level (strides 8, 16, 32, 64).
OFFICIAL_SCALE_RANGES = ((-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, INF))
# The paper: adjacent ranges overlap by 50% (its exact bounds are not published). Ours: each
# official boundary b between levels l and l + 1 becomes an overlap band centred on b, half
# as wide as level l's official interval w_l (w = 64, 64, 128): [b - w_l / 4, b + w_l / 4].
PAPER_SCALE_RANGES = ((-1.0, 80.0), (48.0, 144.0), (112.0, 288.0), (224.0, INF))


def check_scale_ranges(scale_ranges: Sequence[Sequence[float]], num_levels: int) -> None:
    if len(scale_ranges) != num_levels:
        raise ValueError(
            f"foreground assignment: {len(scale_ranges)} scale ranges for {num_levels} levels"
        )
    for level, pair in enumerate(scale_ranges):
        if len(pair) != 2 or not pair[0] < pair[1]:
            raise ValueError(
                f"foreground assignment: scale range {level} must be (low, high) with "
                f"low < high, got {tuple(pair)}"
            )


def token_centers(
    shapes: Sequence[tuple[int, int]], strides: Sequence[float], device: torch.device
) -> torch.Tensor:
    """Pixel centres ``[S, 2]`` (x, y) of every token: ``((j + 0.5) s_l, (i + 0.5) s_l)``."""
    centers = []
    for (height, width), stride in zip(shapes, strides, strict=True):
        ys, xs = torch.meshgrid(
            (torch.arange(height, dtype=torch.float32, device=device) + 0.5) * stride,
            (torch.arange(width, dtype=torch.float32, device=device) + 0.5) * stride,
            indexing="ij",
        )
        centers.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1))
    return torch.cat(centers)


def foreground_targets(
    boxes: Sequence[torch.Tensor],
    shapes: Sequence[tuple[int, int]],
    strides: Sequence[float],
    scale_ranges: Sequence[Sequence[float]],
) -> torch.Tensor:
    """Binary foreground targets ``[B, S]``.

    boxes: per image ``[N_b, 4]`` xyxy in input-image pixels. A token of level ``l`` (stride
    ``s_l``, centre ``((j + 0.5) s_l, (i + 0.5) s_l)``) is foreground when its centre lies
    strictly inside a box whose largest centre-to-side distance ``max(l, t, r, b)`` is in
    ``(low_l, high_l]``.
    """
    if len(strides) != len(shapes):
        raise ValueError(f"foreground assignment: {len(strides)} strides for {len(shapes)} levels")
    check_scale_ranges(scale_ranges, len(shapes))
    device = boxes[0].device if len(boxes) else torch.device("cpu")
    centers = token_centers(shapes, strides, device)  # [S, 2]
    sizes = [h * w for h, w in shapes]
    low = torch.cat(
        [centers.new_full((n,), r[0]) for n, r in zip(sizes, scale_ranges, strict=True)]
    )
    high = torch.cat(
        [centers.new_full((n,), r[1]) for n, r in zip(sizes, scale_ranges, strict=True)]
    )
    targets = []
    for image_boxes in boxes:
        image_boxes = image_boxes.to(centers)
        x, y = centers[:, 0, None], centers[:, 1, None]  # [S, 1]
        ltrb = torch.stack(
            [
                x - image_boxes[:, 0],
                y - image_boxes[:, 1],
                image_boxes[:, 2] - x,
                image_boxes[:, 3] - y,
            ],
            dim=-1,
        )  # [S, N, 4]
        inside = ltrb.amin(-1) > 0
        extent = ltrb.amax(-1)
        in_range = (extent > low[:, None]) & (extent <= high[:, None])
        targets.append((inside & in_range).any(-1))
    return torch.stack(targets).float() if targets else centers.new_zeros(0, centers.shape[0])


def foreground_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal loss over each image's valid tokens, divided by its number of foreground tokens
    (at least 1), averaged over the batch. logits, targets ``[B, S]``, valid bool ``[B, S]``."""
    if logits.shape != targets.shape or logits.shape != valid.shape:
        raise ValueError(
            f"foreground_loss: logits {list(logits.shape)}, targets {list(targets.shape)} and "
            f"valid {list(valid.shape)} must have one shape [B, S]"
        )
    loss = sigmoid_focal_loss(logits.float(), targets.float(), alpha, gamma)
    loss = (loss * valid).sum(1)
    positives = (targets * valid).sum(1).clamp(min=1)
    return (loss / positives).mean()
