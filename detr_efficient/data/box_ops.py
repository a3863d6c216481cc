"""Box format conversions for (N, 4) tensors (or Detectron2 ``Boxes``)."""

from __future__ import annotations

import torch
from detectron2.structures import Boxes

from detr_efficient.layers import box_ops as layer_box_ops
from detr_efficient.layers.box_ops import box_cxcywh_normalized_to_xyxy, box_cxcywh_to_xyxy

__all__ = [
    "box_cxcywh_normalized_to_xyxy",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_xyxy_to_cxcywh_normalized",
]


def _tensor(boxes: torch.Tensor | Boxes) -> torch.Tensor:
    return boxes.tensor if isinstance(boxes, Boxes) else boxes


def box_xyxy_to_cxcywh(boxes: torch.Tensor | Boxes) -> torch.Tensor:
    """(..., 4) [x0, y0, x1, y1] → (..., 4) [cx, cy, w, h]."""
    return layer_box_ops.box_xyxy_to_cxcywh(_tensor(boxes))


def box_xyxy_to_cxcywh_normalized(
    boxes: torch.Tensor | Boxes, image_size: tuple[int, int]
) -> torch.Tensor:
    """Absolute (..., 4) XYXY in an image of ``image_size`` (H, W) → (..., 4) [cx, cy, w, h]
    as fractions of the image width/height (the targets DETR models train on)."""
    return layer_box_ops.box_xyxy_to_cxcywh_normalized(_tensor(boxes), image_size)
