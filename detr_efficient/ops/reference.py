"""Plain PyTorch definitions of the kernels' semantics, used by the tests as the reference."""

from __future__ import annotations

import torch


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair: ``[N, 4]`` x ``[M, 4]`` xyxy → ``[N, M]``."""
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: visit boxes by descending score (ties: lower index first); keep a box
    unless a kept box overlaps it with IoU > ``iou_threshold``. ``[N, 4]``, ``[N]`` → ``[K]``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(order[rank])
        suppressed |= iou[rank].double() > iou_threshold  # compared in double, as torchvision
    return torch.stack(keep) if keep else order.new_empty(0)


def batched_nms_reference(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    valid: torch.Tensor | None = None,
    max_keep: int | None = None,
) -> torch.Tensor:
    """``nms_reference`` on each image's valid boxes, first ``max_keep`` survivors kept:
    ``[B, N, 4]``, ``[B, N]`` → keep mask ``[B, N]`` bool."""
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    for b in range(scores.shape[0]):
        candidates = torch.arange(scores.shape[1]) if valid is None else valid[b].nonzero()[:, 0]
        kept = candidates[nms_reference(boxes[b, candidates], scores[b, candidates], iou_threshold)]
        keep[b, kept[:max_keep]] = True
    return keep


def select_topk_reference(
    scores: torch.Tensor, k: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per image: the ``k[b]`` best valid tokens by ``torch.sort(descending, stable)``,
    padded with -1 to ``min(max(k), N)``: ``[B, N]`` → ``[B, K]`` int64."""
    width = min(int(k.max()), scores.shape[1]) if len(k) else 0
    out = torch.full((scores.shape[0], width), -1, dtype=torch.int64)
    for b in range(scores.shape[0]):
        candidates = torch.arange(scores.shape[1]) if valid is None else valid[b].nonzero()[:, 0]
        order = torch.sort(scores[b, candidates], descending=True, stable=True).indices
        chosen = candidates[order][: int(k[b])]
        out[b, : len(chosen)] = chosen
    return out


def gather_tokens_reference(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The usual ``gather`` with a materialised ``repeat`` index: ``[B, N, C]``, ``[B, K]`` →
    ``[B, K, C]``, zero rows where the index is -1."""
    rows = index.clamp(min=0).unsqueeze(-1).repeat(1, 1, x.shape[2])
    gathered = torch.gather(x, 1, rows)
    return torch.where((index >= 0).unsqueeze(-1), gathered, torch.zeros_like(gathered))


def scatter_tokens_reference(
    x: torch.Tensor, index: torch.Tensor, src: torch.Tensor
) -> torch.Tensor:
    """A per-image loop of row assignments: a copy of ``x`` ``[B, N, C]`` with rows
    ``index[b, k] >= 0`` replaced by ``src[b, k]``."""
    out = x.clone()
    for b in range(x.shape[0]):
        chosen = index[b] >= 0
        out[b, index[b, chosen]] = src[b, chosen]
    return out
