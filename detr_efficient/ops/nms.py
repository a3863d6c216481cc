"""Class-agnostic non-maximum suppression (greedy, identical to ``torchvision.ops.nms``),
for one image or a padded batch of images."""

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
from .topk import select_topk

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


@torch.library.register_fake("detr_efficient::nms")
def _nms_fake(boxes, scores, iou_threshold):
    """Result shape for tracing (``torch.compile``, export): ``[K]``, K data-dependent."""
    kept = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((kept,), dtype=torch.long)


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    valid: torch.Tensor | None = None,
    max_keep: int | None = None,
) -> torch.Tensor:
    """Class-agnostic greedy NMS of every image of a batch, in one launch and without a host
    sync on the GPU.

    Args:
        boxes: ``[B, N, 4]`` (x1, y1, x2, y2); scores: ``[B, N]``, same dtype and device.
        iou_threshold: as in ``nms``.
        valid: ``[B, N]`` bool, or None. Invalid boxes (padding) are never kept and never
            suppress others.
        max_keep: keep at most this many boxes per image (the best-scored survivors).

    Returns:
        Keep mask ``[B, N]`` bool. Per image, identical to ``nms`` on that image's valid boxes.
    """
    op = "batched_nms"
    check_tensor(op, "boxes", boxes, ("B", "N", 4))
    check_tensor(op, "scores", scores, ("B", "N"))
    if tuple(scores.shape) != tuple(boxes.shape[:2]):
        raise ValueError(
            f"{op}: 'scores' must be [B, N] = {list(boxes.shape[:2])}, got {list(scores.shape)}"
        )
    check_same_dtype(op, {"boxes": boxes, "scores": scores})
    tensors = {"boxes": boxes, "scores": scores}
    if valid is not None:
        check_tensor(op, "valid", valid, tuple(scores.shape), (torch.bool,))
        tensors["valid"] = valid
    device = check_same_device(op, tensors)
    threshold = check_finite_float(op, "iou_threshold", iou_threshold)
    if max_keep is not None and (
        isinstance(max_keep, bool) or not isinstance(max_keep, int) or max_keep < 0
    ):
        raise ValueError(f"{op}: 'max_keep' must be None or an int >= 0, got {max_keep!r}")
    _extension.require_kernels_for(device, op)
    if device.type == "cuda" and boxes.shape[1] > MAX_CUDA_BOXES:
        raise ValueError(f"{op}: at most {MAX_CUDA_BOXES} boxes per image on CUDA")
    keep_limit = -1 if max_keep is None else max_keep
    return torch.ops.detr_efficient.batched_nms(boxes, scores, valid, threshold, keep_limit)


def batched_nms_indices(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    valid: torch.Tensor | None = None,
    max_keep: int | None = None,
) -> torch.Tensor:
    """``batched_nms`` as indices: ``[B, K]`` int64, each row's kept boxes by descending
    score, padded with -1. K is ``max_keep`` when given (no host sync), else the largest
    kept count (one sync)."""
    keep = batched_nms(boxes, scores, iou_threshold, valid, max_keep)
    kept_per_image = keep.sum(dim=1)
    return select_topk(scores, kept_per_image, keep, max_k=max_keep)


@torch.library.register_fake("detr_efficient::batched_nms")
def _batched_nms_fake(boxes, scores, valid, iou_threshold, max_keep):
    return scores.new_empty(scores.shape, dtype=torch.bool)
