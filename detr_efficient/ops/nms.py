"""Class-agnostic non-maximum suppression (greedy, identical to ``torchvision.ops.nms``)."""

from __future__ import annotations

import torch

from . import _extension
from ._validation import (
    check_finite_float,
    check_same_device,
    check_same_dtype,
    check_same_size,
    check_tensor,
)

# The CUDA kernel launches a (words x words) grid of 64-box blocks; 65535 is the grid's limit.
MAX_CUDA_BOXES = 65535 * 64


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS over all boxes regardless of class.

    Args:
        boxes: ``[N, 4]`` as (x1, y1, x2, y2), float16/bfloat16/float32/float64.
        scores: ``[N]``, same dtype and device as ``boxes``.
        iou_threshold: boxes overlapping a kept, higher-scored box with IoU > this are dropped.

    Returns:
        ``[K]`` int64 indices of the kept boxes, by descending score; equal scores keep their
        input order. IoUs are computed in float32 (float64 for float64 inputs). As in
        torchvision, NaN scores rank above all others and boxes with NaN coordinates never
        suppress or get suppressed by others; inverted boxes get negative areas.
    """
    op = "nms"
    check_tensor(op, "boxes", boxes, ("N", 4))
    check_tensor(op, "scores", scores, ("N",))
    check_same_size(op, {"boxes.shape[0]": boxes.shape[0], "scores.shape[0]": scores.shape[0]})
    check_same_dtype(op, {"boxes": boxes, "scores": scores})
    device = check_same_device(op, {"boxes": boxes, "scores": scores})
    threshold = check_finite_float(op, "iou_threshold", iou_threshold)
    _extension.require_kernels_for(device, op)
    if device.type == "cuda" and boxes.shape[0] > MAX_CUDA_BOXES:
        raise ValueError(
            f"nms: at most {MAX_CUDA_BOXES} boxes per call on CUDA, got {boxes.shape[0]}"
        )
    return torch.ops.detr_efficient.nms(boxes, scores, threshold)


_extension.load()


@torch.library.register_fake("detr_efficient::nms")
def _nms_fake(boxes, scores, iou_threshold):
    """Result shape for tracing (``torch.compile``, export): ``[K]``, K data-dependent."""
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.long)
