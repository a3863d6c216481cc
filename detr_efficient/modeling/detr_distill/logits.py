"""DETRDistill's Hungarian-matching logits distillation: each teacher prediction of a decoder
stage (background ones included) is matched to one student prediction of the same stage, which
learns the teacher's scores and box."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from detr_efficient.layers.box_ops import (
    box_cxcywh_to_xyxy,
    generalized_box_iou,
    paired_generalized_box_iou,
)

__all__ = ["LogitsDistillation", "distillation_cost", "match_to_teacher"]


def distillation_cost(
    student_logits: torch.Tensor,
    student_boxes: torch.Tensor,
    teacher_scores: torch.Tensor,
    teacher_boxes: torch.Tensor,
    weights: tuple[float, float, float],
) -> torch.Tensor:
    """Cost ``[T, S]`` of pairing teacher prediction t with student prediction s: the loss the
    pair would get. ``student_logits`` ``[S, K]``, ``teacher_scores`` ``[T, K]`` (sigmoid
    probabilities), boxes normalised cxcywh; ``weights``: (class, L1, GIoU). The class cost is
    the binary cross-entropy of the student's logits against the teacher's scores, summed over
    the K classes."""
    class_weight, bbox_weight, giou_weight = weights
    logits, scores = student_logits.float(), teacher_scores.float()
    # BCE(x, p) = softplus(x) - p * x, summed over classes
    cost_class = F.softplus(logits).sum(-1)[None, :] - scores @ logits.T
    cost_bbox = torch.cdist(teacher_boxes.float(), student_boxes.float(), p=1)
    giou = generalized_box_iou(
        box_cxcywh_to_xyxy(teacher_boxes.float()), box_cxcywh_to_xyxy(student_boxes.float())
    )
    return class_weight * cost_class + bbox_weight * cost_bbox - giou_weight * giou


def match_to_teacher(
    student_logits: torch.Tensor,
    student_boxes: torch.Tensor,
    teacher_scores: torch.Tensor,
    teacher_boxes: torch.Tensor,
    weights: tuple[float, float, float],
    student_mask: torch.Tensor | None = None,
    teacher_mask: torch.Tensor | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, the minimum-cost one-to-one (student index, teacher index) pairs, int64 on
    the CPU, for ``[B, S, K]`` / ``[B, S, 4]`` student and ``[B, T, K]`` / ``[B, T, 4]``
    teacher predictions; ``min(S_i, T_i)`` pairs per image, where only the predictions that
    ``student_mask`` ``[B, S]`` / ``teacher_mask`` ``[B, T]`` (bool; None: all) mark take
    part (DDQ's distinct queries)."""
    indices = []
    with torch.no_grad():
        for i in range(student_logits.shape[0]):
            students = _marked(student_mask, i, student_logits.shape[1], student_logits.device)
            teachers = _marked(teacher_mask, i, teacher_scores.shape[1], teacher_scores.device)
            cost = distillation_cost(
                student_logits[i, students],
                student_boxes[i, students],
                teacher_scores[i, teachers],
                teacher_boxes[i, teachers],
                weights,
            )
            teacher_idx, student_idx = linear_sum_assignment(cost.cpu().numpy())
            indices.append(
                (
                    students.cpu()[torch.as_tensor(student_idx, dtype=torch.int64)],
                    teachers.cpu()[torch.as_tensor(teacher_idx, dtype=torch.int64)],
                )
            )
    return indices


def _marked(mask: torch.Tensor | None, image: int, count: int, device) -> torch.Tensor:
    """Indices int64 ``[n]`` of the predictions of ``image`` that ``mask`` ``[B, count]``
    marks (all ``count`` when ``mask`` is None)."""
    if mask is None:
        return torch.arange(count, device=device)
    return mask[image].nonzero()[:, 0].to(device)


class LogitsDistillation(nn.Module):
    """Progressive logits distillation over aligned decoder stages (student stage i learns from
    the teacher stage given with it). Per stage, the pairs of ``match_to_teacher`` get the
    student-vs-teacher classification BCE (summed over classes), L1 and ``1 - GIoU``, each
    summed over the pairs and divided by their number, times ``class_weight``,
    ``bbox_weight`` and ``giou_weight`` (the matching uses the same weights)."""

    def __init__(
        self, class_weight: float = 1.0, bbox_weight: float = 5.0, giou_weight: float = 2.0
    ):
        super().__init__()
        self.weights = (float(class_weight), float(bbox_weight), float(giou_weight))

    def stage_loss(
        self,
        student_logits,
        student_boxes,
        teacher_logits,
        teacher_boxes,
        student_mask=None,
        teacher_mask=None,
    ) -> dict:
        """Weighted ``class``, ``bbox`` and ``giou`` losses of one stage: student ``[B, S, K]``
        logits and ``[B, S, 4]`` boxes against the (detached) teacher's ``[B, T, *]``; only
        the predictions ``student_mask`` ``[B, S]`` / ``teacher_mask`` ``[B, T]`` mark (bool;
        None: all) are paired."""
        for name, mask, logits in (
            ("student_mask", student_mask, student_logits),
            ("teacher_mask", teacher_mask, teacher_logits),
        ):
            if mask is not None and (mask.dtype != torch.bool or mask.shape != logits.shape[:2]):
                raise ValueError(
                    f"LogitsDistillation: '{name}' must be bool {tuple(logits.shape[:2])}, got "
                    f"{mask.dtype} {tuple(mask.shape)}"
                )
        if student_logits.shape[::2] != teacher_logits.shape[::2]:
            raise ValueError(
                f"LogitsDistillation: student logits {tuple(student_logits.shape)} and teacher "
                f"logits {tuple(teacher_logits.shape)} need the same batch and class count"
            )
        device = student_logits.device
        with torch.autocast(device.type, enabled=False):
            scores = teacher_logits.detach().float().sigmoid()
            teacher_boxes = teacher_boxes.detach().float()
            logits, boxes = student_logits.float(), student_boxes.float()
            indices = match_to_teacher(
                logits, boxes, scores, teacher_boxes, self.weights, student_mask, teacher_mask
            )
            batch = torch.cat([torch.full_like(s, i) for i, (s, _) in enumerate(indices)])
            student_idx = torch.cat([s for s, _ in indices]).to(device)
            teacher_idx = torch.cat([t for _, t in indices]).to(device)
            batch = batch.to(device)
            pairs = max(int(student_idx.numel()), 1)
            matched_logits = logits[batch, student_idx]
            matched_boxes = boxes[batch, student_idx]
            target_scores = scores[batch, teacher_idx]
            target_boxes = teacher_boxes[batch, teacher_idx]
            bce = F.binary_cross_entropy_with_logits(matched_logits, target_scores, reduction="sum")
            giou = paired_generalized_box_iou(
                box_cxcywh_to_xyxy(matched_boxes), box_cxcywh_to_xyxy(target_boxes)
            )
            class_weight, bbox_weight, giou_weight = self.weights
            return {
                "class": class_weight * bce / pairs,
                "bbox": bbox_weight * (matched_boxes - target_boxes).abs().sum() / pairs,
                "giou": giou_weight * (1.0 - giou).sum() / pairs,
            }

    def forward(
        self,
        student_logits,
        student_boxes,
        teacher_logits,
        teacher_boxes,
        student_masks=None,
        teacher_masks=None,
    ) -> dict:
        """Lists of per-stage tensors (aligned, same length; the masks lists or None, see
        ``stage_loss``) → ``loss_distill_{class,bbox,giou}`` with suffix ``_<i>`` for stage i
        and none for the last."""
        stages = len(student_logits)
        student_masks = [None] * stages if student_masks is None else student_masks
        teacher_masks = [None] * stages if teacher_masks is None else teacher_masks
        if not stages or any(
            len(x) != stages
            for x in (student_boxes, teacher_logits, teacher_boxes, student_masks, teacher_masks)
        ):
            raise ValueError("LogitsDistillation: need the same number (>= 1) of every stage list")
        losses = {}
        for i in range(stages):
            suffix = "" if i == stages - 1 else f"_{i}"
            stage = self.stage_loss(
                student_logits[i],
                student_boxes[i],
                teacher_logits[i],
                teacher_boxes[i],
                student_masks[i],
                teacher_masks[i],
            )
            losses.update({f"loss_distill_{name}{suffix}": v for name, v in stage.items()})
        return losses
