"""DDQ's distinct queries: class-agnostic NMS picks them among the encoder proposals and again
between decoder layers; the attention mask lets suppressed queries see only distinct ones."""

from __future__ import annotations

import torch

from detr_efficient import ops
from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy

__all__ = ["distinct_attn_mask", "select_distinct", "suppress_duplicates"]


def select_distinct(
    boxes: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor, iou: float, k: int
) -> torch.Tensor:
    """Indices ``[B, k]`` of the ``k`` best boxes surviving class-agnostic NMS at ``iou``,
    by descending score, -1 past an image's survivors. boxes ``[B, N, 4]`` cxcywh, scores
    ``[B, N]``, valid bool ``[B, N]`` (invalid boxes are never kept)."""
    xyxy = box_cxcywh_to_xyxy(boxes.detach().float())
    return ops.batched_nms_indices(xyxy, scores.detach().float(), iou, valid, max_keep=k)


def suppress_duplicates(
    boxes: torch.Tensor, scores: torch.Tensor, distinct: torch.Tensor, iou: float
) -> torch.Tensor:
    """The queries still distinct after NMS among the ``distinct`` ones: bool ``[B, Q]``.
    boxes ``[B, Q, 4]`` cxcywh, scores ``[B, Q]``."""
    xyxy = box_cxcywh_to_xyxy(boxes.detach().float())
    return ops.batched_nms(xyxy, scores.detach().float(), iou, valid=distinct)


def distinct_attn_mask(distinct: torch.Tensor) -> torch.Tensor:
    """Self-attention mask ``[B, Q, Q]`` (True = may not attend) among queries of which
    ``distinct`` ``[B, Q]`` are distinct: a distinct query attends to every query and every
    query attends to the distinct ones; two suppressed queries ignore each other (the
    official code's mask). An image without distinct queries lets each query attend to
    itself (a fully masked row would give NaN)."""
    suppressed = ~distinct
    mask = suppressed[:, :, None] & suppressed[:, None, :]
    eye = torch.eye(distinct.shape[1], dtype=torch.bool, device=distinct.device)
    return mask & ~(eye & ~distinct.any(1)[:, None, None])
