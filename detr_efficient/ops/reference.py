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
