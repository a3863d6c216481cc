"""DETRDistill's Hungarian-matching logits distillation: each teacher prediction of a decoder
stage (background ones included) is matched to one student prediction of the same stage, which
learns the teacher's scores and box."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detr_efficient.layers.box_ops import (
    box_cxcywh_to_xyxy,
    generalized_box_iou,
    paired_generalized_box_iou,
)

from ..assignment import assign_all, to_cpu_together
from ..criterion import matched_pairs

__all__ = ["LogitsDistillation", "distillation_cost", "match_stages", "match_to_teacher"]


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
    stage = (student_logits, student_boxes, teacher_scores, teacher_boxes)
    return match_stages([stage], weights, [student_mask], [teacher_mask])[0]


def match_stages(
    stages: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    weights: tuple[float, float, float],
    student_masks: list[torch.Tensor | None],
    teacher_masks: list[torch.Tensor | None],
) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """``match_to_teacher`` of several decoder stages, each a (student logits, student boxes,
    teacher scores, teacher boxes) tuple with its masks: the costs of every stage and image
    reach the CPU in one transfer and are solved concurrently (``assign_all``)."""
    problems = []
    with torch.no_grad():
        for (logits, boxes, scores, teacher_boxes), student_mask, teacher_mask in zip(
            stages, student_masks, teacher_masks, strict=True
        ):
            student_mask = None if student_mask is None else student_mask.cpu()
            teacher_mask = None if teacher_mask is None else teacher_mask.cpu()
            for i in range(logits.shape[0]):
                students, student_rows = _marked(student_mask, i, logits.shape[1], logits.device)
                teachers, teacher_rows = _marked(teacher_mask, i, scores.shape[1], logits.device)
                cost = distillation_cost(
                    logits[i, student_rows],
                    boxes[i, student_rows],
                    scores[i, teacher_rows],
                    teacher_boxes[i, teacher_rows],
                    weights,
                )
                problems.append((students, teachers, cost))
    solutions = assign_all(to_cpu_together([cost for _, _, cost in problems]))
    pairs = [
        (students[student_idx], teachers[teacher_idx])
        for (students, teachers, _), (teacher_idx, student_idx) in zip(
            problems, solutions, strict=True
        )
    ]
    per_stage, start = [], 0
    for logits, *_ in stages:
        per_stage.append(pairs[start : start + logits.shape[0]])
        start += logits.shape[0]
    return per_stage


def _marked(mask: torch.Tensor | None, image: int, count: int, device) -> tuple:
    """The predictions of ``image`` that the CPU ``mask`` ``[B, count]`` marks (all ``count``
    when ``mask`` is None): their CPU indices int64 ``[n]`` and a row selector for tensors on
    ``device`` (a plain slice when all are marked, which copies nothing)."""
    if mask is None:
        return torch.arange(count), slice(None)
    indices = mask[image].nonzero()[:, 0]
    return indices, indices.to(device)


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
        stage = (student_logits, student_boxes, teacher_logits, teacher_boxes)
        return self.stage_losses([stage], [student_mask], [teacher_mask])[0]

    def stage_losses(self, stages, student_masks, teacher_masks) -> list[dict]:
        """``stage_loss`` of each (student logits, student boxes, teacher logits, teacher
        boxes) tuple in ``stages`` with its masks; all stages are matched together
        (``match_stages``)."""
        for stage, student_mask, teacher_mask in zip(
            stages, student_masks, teacher_masks, strict=True
        ):
            _check_stage(stage[0], stage[2], student_mask, teacher_mask)
        device = stages[0][0].device
        with torch.autocast(device.type, enabled=False):
            prepared = [
                (
                    logits.float(),
                    boxes.float(),
                    teacher_logits.detach().float().sigmoid(),
                    teacher_boxes.detach().float(),
                )
                for logits, boxes, teacher_logits, teacher_boxes in stages
            ]
            matches = match_stages(prepared, self.weights, student_masks, teacher_masks)
            return [
                self._pair_losses(*stage, indices)
                for stage, indices in zip(prepared, matches, strict=True)
            ]

    def _pair_losses(self, logits, boxes, scores, teacher_boxes, indices) -> dict:
        """The weighted losses of the matched (student, teacher) ``indices`` of one stage."""
        batch, student_idx, teacher_idx = matched_pairs(indices, logits.device)
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
        per_stage = self.stage_losses(
            list(zip(student_logits, student_boxes, teacher_logits, teacher_boxes, strict=True)),
            student_masks,
            teacher_masks,
        )
        losses = {}
        for i, stage in enumerate(per_stage):
            suffix = "" if i == stages - 1 else f"_{i}"
            losses.update({f"loss_distill_{name}{suffix}": v for name, v in stage.items()})
        return losses


def _check_stage(student_logits, teacher_logits, student_mask, teacher_mask) -> None:
    """Masks bool ``[B, S]`` / ``[B, T]`` (or None); the same batch and class count."""
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
