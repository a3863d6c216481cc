"""Box utilities on plain tensors (torch only): format conversions, IoU / GIoU, and the
inverse sigmoid used for iterative box refinement. Boxes are ``[..., 4]``."""

from __future__ import annotations

import torch

__all__ = [
    "box_area",
    "box_cxcywh_normalized_to_xyxy",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xyxy_to_cxcywh",
    "box_xyxy_to_cxcywh_normalized",
    "generalized_box_iou",
    "inverse_sigmoid",
    "paired_box_iou",
    "paired_generalized_box_iou",
]


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (x0, y0, x1, y1) → ``[..., 4]`` (cx, cy, w, h)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (cx, cy, w, h) → ``[..., 4]`` (x0, y0, x1, y1)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _image_scale(image_size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """``[4]`` (W, H, W, H) of an image of ``image_size`` (H, W), in ``like``'s dtype/device."""
    height, width = image_size
    return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)


def box_xyxy_to_cxcywh_normalized(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Absolute ``[..., 4]`` xyxy in an image of ``image_size`` (H, W) → ``[..., 4]`` cxcywh
    as fractions of the image width/height (the targets DETR models train on)."""
    cxcywh = box_xyxy_to_cxcywh(boxes)
    return cxcywh / _image_scale(image_size, cxcywh)


def box_cxcywh_normalized_to_xyxy(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``box_xyxy_to_cxcywh_normalized``: → absolute ``[..., 4]`` xyxy."""
    return box_cxcywh_to_xyxy(boxes * _image_scale(image_size, boxes))


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` xyxy → ``[...]`` area (negative extents count as zero)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of xyxy boxes ``[N, 4]`` x ``[M, 4]`` → ``([N, M], [N, M])``."""
    inter, union, _ = _overlap(boxes1[:, None], boxes2[None, :], with_hull=False)
    return inter / union, union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU of xyxy boxes ``[N, 4]`` x ``[M, 4]`` → ``[N, M]`` in [-1, 1].
    Boxes must be well formed (x1 >= x0, y1 >= y0); degenerate ones raise a ValueError."""
    _check_well_formed("generalized_box_iou", boxes1, boxes2)
    inter, union, hull = _overlap(boxes1[:, None], boxes2[None, :])
    return inter / union - (hull - union) / hull


def _check_well_formed(op: str, boxes1: torch.Tensor, boxes2: torch.Tensor) -> None:
    """x1 >= x0 and y1 >= y0 in both xyxy ``[..., 4]`` (NaN fails), read back in one sync."""
    well_formed = torch.stack([(b[..., 2:] >= b[..., :2]).all() for b in (boxes1, boxes2)]).tolist()
    for name, good in zip(("boxes1", "boxes2"), well_formed, strict=True):
        if not good:
            raise ValueError(f"{op}: '{name}' holds boxes with x1 < x0 or y1 < y0")


def _overlap(boxes1: torch.Tensor, boxes2: torch.Tensor, with_hull: bool = True) -> tuple:
    """Intersection, union and (``with_hull``, else None) enclosing-box areas of xyxy boxes
    ``[..., 4]`` (broadcast), computed per coordinate, so every intermediate is a contiguous
    ``[...]`` plane (about twice as fast on the CPU as corner tensors ``[..., 2]``)."""
    x0a, y0a, x1a, y1a = boxes1.unbind(-1)
    x0b, y0b, x1b, y1b = boxes2.unbind(-1)
    inter_w = (torch.minimum(x1a, x1b) - torch.maximum(x0a, x0b)).clamp(min=0)
    inter_h = (torch.minimum(y1a, y1b) - torch.maximum(y0a, y0b)).clamp(min=0)
    inter = inter_w * inter_h
    union = box_area(boxes1) + box_area(boxes2) - inter
    if not with_hull:
        return inter, union, None
    hull_w = (torch.maximum(x1a, x1b) - torch.minimum(x0a, x0b)).clamp(min=0)
    hull_h = (torch.maximum(y1a, y1b) - torch.minimum(y0a, y0b)).clamp(min=0)
    return inter, union, hull_w * hull_h


def paired_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of xyxy boxes ``[..., 4]`` and ``[..., 4]`` (broadcast) → ``[...]``;
    0 where the union is empty."""
    inter, union, _ = _overlap(boxes1, boxes2, with_hull=False)
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Element-wise generalised IoU of xyxy boxes ``[..., 4]`` and ``[..., 4]`` (broadcast over
    the leading dims, e.g. ``[N, 4]`` x ``[N, 4]`` → ``[N]``) in [-1, 1]. Boxes must be well
    formed (x1 >= x0, y1 >= y0); degenerate ones raise a ValueError."""
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        if boxes.shape[-1:] != (4,):
            raise ValueError(
                f"paired_generalized_box_iou: '{name}' must be [..., 4], got {tuple(boxes.shape)}"
            )
    _check_well_formed("paired_generalized_box_iou", boxes1, boxes2)
    inter, union, hull = _overlap(boxes1, boxes2)
    return inter / union - (hull - union) / hull


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``log(x / (1 - x))`` with ``x`` clamped to [0, 1] and both terms to at least ``eps``."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
