"""DETRDistill's target-aware feature distillation: the student's neck features learn the
teacher's where the teacher's best queries look."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, box_iou

__all__ = ["FeatureDistillation", "target_aware_mask", "teacher_query_quality"]


def teacher_query_quality(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    targets: list[dict],
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Quality ``[B, Q]`` of each teacher query: its highest class probability times the IoU
    of its box with the best-overlapping ground-truth box; in an image without ground truth,
    the class probability alone, as in the official code (the mask then follows what the
    teacher believes are objects, instead of covering the whole image); 0 for the queries
    that ``query_mask`` bool ``[B, Q]`` leaves out, e.g. DDQ's suppressed ones. ``logits``
    ``[B, Q, K]``, ``boxes`` ``[B, Q, 4]`` normalised cxcywh, ``targets`` with normalised
    cxcywh ``boxes``."""
    scores = logits.detach().float().sigmoid().amax(-1)
    overlap = torch.ones_like(scores)
    for i, target in enumerate(targets):
        if len(target["boxes"]):
            iou = box_iou(
                box_cxcywh_to_xyxy(boxes[i].detach().float()),
                box_cxcywh_to_xyxy(target["boxes"].float().to(boxes.device)),
            )[0]
            overlap[i] = iou.amax(-1)
    if query_mask is not None:
        overlap = overlap * query_mask.to(overlap.device)
    return scores * overlap


def target_aware_mask(
    queries: torch.Tensor,
    quality: torch.Tensor,
    features: torch.Tensor,
    padding_mask: torch.Tensor,
    level_sizes: list[int],
    top_k: int = 100,
    floor: float = 0.01,
) -> torch.Tensor:
    """Distillation mask ``[B, S]`` in [0, 1]: for each token, the sum over the ``top_k``
    queries of highest ``quality`` ``[B, Q]`` of quality × cosine similarity between the query
    ``[B, Q, C]`` and the token's feature ``[B, S, C]``; clamped to at least ``floor`` and
    divided by its maximum over the image's valid tokens of each level (``level_sizes``, the
    tokens per level, in order); 0 on padding (``padding_mask`` bool ``[B, S]``)."""
    k = min(top_k, queries.shape[1])
    best, index = quality.float().topk(k, dim=1)
    chosen = torch.gather(queries.float(), 1, index[..., None].expand(-1, -1, queries.shape[-1]))
    similarity = F.normalize(chosen, dim=-1) @ F.normalize(features.float(), dim=-1).transpose(1, 2)
    mask = (best[..., None] * similarity).sum(1).clamp(min=floor)
    mask = mask.masked_fill(padding_mask, 0.0)
    levels = []
    for level in mask.split(level_sizes, dim=1):
        levels.append(level / level.amax(dim=1, keepdim=True).clamp(min=floor))
    return torch.cat(levels, dim=1)


TEACHER_STAGES = ("all", "last")


class FeatureDistillation(nn.Module):
    """``weight`` × Σ over levels of the mean over a level's valid tokens and channels of
    ``(mask · (F_teacher - adapter(F_student)))²``, with the mask of ``target_aware_mask``
    (``top_k`` teacher queries).

    ``adapter``: a per-token linear map (a 1×1 convolution) from ``student_dim`` to
    ``teacher_dim`` channels; by default (None) only where the widths differ, as in the
    official code (at equal widths the student's tokens imitate the teacher's directly);
    True or False forces it on or off. ``teacher_stages``: "all" (the official code and the
    paper: one loss per teacher decoder stage, each with the mask of that stage's queries)
    or "last" (the last stage's alone).
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        weight: float = 1.0,
        top_k: int = 100,
        adapter: bool | None = None,
        teacher_stages: str = "all",
    ):
        super().__init__()
        if adapter is None:
            adapter = student_dim != teacher_dim
        if not adapter and student_dim != teacher_dim:
            raise ValueError(
                f"FeatureDistillation: student ({student_dim}) and teacher ({teacher_dim}) "
                "widths differ, so the adapter cannot be switched off"
            )
        if teacher_stages not in TEACHER_STAGES:
            raise ValueError(
                f"FeatureDistillation: teacher_stages must be one of {TEACHER_STAGES}, got "
                f"{teacher_stages!r}"
            )
        self.adapter = nn.Linear(student_dim, teacher_dim) if adapter else nn.Identity()
        self.weight = float(weight)
        self.top_k = int(top_k)
        self.teacher_stages = teacher_stages

    def forward(
        self,
        student_features: torch.Tensor,
        teacher_features: torch.Tensor,
        mask: torch.Tensor,
        padding_mask: torch.Tensor,
        level_sizes: list[int],
    ) -> torch.Tensor:
        """Features ``[B, S, C_s]`` and ``[B, S, C_t]`` over the same tokens, ``mask`` and
        ``padding_mask`` ``[B, S]`` → the weighted scalar loss."""
        if student_features.shape[:2] != teacher_features.shape[:2]:
            raise ValueError(
                f"FeatureDistillation: the student's tokens {tuple(student_features.shape)} and "
                f"the teacher's {tuple(teacher_features.shape)} must cover the same levels and "
                "sizes (same strides and input)"
            )
        device = student_features.device
        with torch.autocast(device.type, enabled=False):
            adapted = self.adapter(student_features.float())
            error = (mask[..., None] * (teacher_features.detach().float() - adapted)) ** 2
            valid = (~padding_mask).float()
            total = adapted.new_zeros(())
            for err, val in zip(
                error.split(level_sizes, dim=1), valid.split(level_sizes, dim=1), strict=True
            ):
                count = val.sum().clamp(min=1.0) * err.shape[-1]
                total = total + (err * val[..., None]).sum() / count
        return self.weight * total
