"""DDQ's auxiliary loss for the dense (non-distinct) queries: one-to-many Hungarian matching
(each ground-truth box repeated up to ``top_k`` times) and quality-focal targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detr_efficient.layers.box_ops import (
    box_cxcywh_to_xyxy,
    paired_box_iou,
    paired_generalized_box_iou,
)

from ..assignment import assign
from ..matcher import HungarianMatcher, check_query_mask

__all__ = ["DenseQueryLoss", "quality_focal_loss", "top_k_assign"]


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Element-wise QFL: ``BCE(sigmoid(x), t) * |sigmoid(x) - t| ** beta``, any shape."""
    scale = (logits.sigmoid() - target).abs().pow(beta)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * scale


def top_k_assign(cost: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-many assignment on a CPU cost ``[D, N]``: every target is repeated
    ``k = min(top_k, D // N)`` times and the repeated problem solved one-to-one →
    (query, target) int64 ``[k * N]`` (each query at most once)."""
    queries, targets = cost.shape
    if targets == 0 or queries == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    k = max(1, min(top_k, queries // targets))
    query, column = assign(cost.repeat(1, k))
    return query, column % targets


class DenseQueryLoss(nn.Module):
    """Quality focal loss + GIoU for DDQ's dense queries (SPEC §5: QFL β=2, GIoU weight 2,
    top-k Hungarian with k=4).

    Per image, the queries assigned to a target get a soft class target: the alignment
    ``p * IoU**6`` (``p`` the predicted probability of the target's class), divided by the
    largest alignment among that target's queries and multiplied by their largest IoU; all
    other entries are 0. The GIoU loss of an assigned pair is weighted by its soft target.
    Both sums are divided by the sum of soft targets over the batch (at least 1).
    ``forward(pred_logits [B, D, K], pred_boxes [B, D, 4] normalised cxcywh, targets,
    query_mask bool [B, D] | None) → {"loss_class", "loss_giou"}`` (weighted); queries
    outside ``query_mask`` (padding) are neither assigned nor classified.
    """

    def __init__(
        self,
        matcher: HungarianMatcher,
        top_k: int = 4,
        beta: float = 2.0,
        class_weight: float = 1.0,
        giou_weight: float = 2.0,
        iou_power: float = 6.0,
    ) -> None:
        super().__init__()
        if top_k < 1:
            raise ValueError(f"DenseQueryLoss: 'top_k' must be >= 1, got {top_k}")
        self.matcher = matcher
        self.top_k = top_k
        self.beta = beta
        self.class_weight = class_weight
        self.giou_weight = giou_weight
        self.iou_power = iou_power

    def soft_targets(
        self,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        targets: list[dict],
        query_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
        """Class targets ``[B, D, K]`` and per image (query, target, soft target) of the
        assigned pairs (no gradient)."""
        costs = self.matcher.cost_matrices(pred_logits, pred_boxes, targets)
        class_target = torch.zeros_like(pred_logits, dtype=torch.float32)
        pairs = []
        with torch.no_grad():
            assigned = []
            for cost, mask in zip(costs, query_mask.cpu(), strict=True):
                rows = mask.nonzero()[:, 0]
                query, index = top_k_assign(cost[rows], self.top_k)
                assigned.append((rows[query], index))
            # to the device in one copy (each copy from host memory waits for the device)
            flat = torch.cat([torch.cat([q, t]) for q, t in assigned]).to(pred_logits.device)
            parts = flat.split([len(q) for q, _ in assigned for _ in range(2)])
            for i, target in enumerate(targets):
                query, index = parts[2 * i], parts[2 * i + 1]
                labels = target["labels"].to(pred_logits.device)[index]
                gt = box_cxcywh_to_xyxy(target["boxes"].to(pred_boxes.device).float()[index])
                iou = paired_box_iou(box_cxcywh_to_xyxy(pred_boxes[i, query].float()), gt)
                prob = pred_logits[i, query, labels].float().sigmoid()
                alignment = prob * iou.clamp(min=0).pow(self.iou_power)
                num_targets = len(target["labels"])
                best_alignment = alignment.new_zeros(num_targets).scatter_reduce(
                    0, index, alignment, "amax", include_self=False
                )
                best_iou = iou.new_zeros(num_targets).scatter_reduce(
                    0, index, iou, "amax", include_self=False
                )
                soft = alignment / best_alignment[index].clamp(min=1e-12) * best_iou[index]
                class_target[i, query, labels] = soft
                pairs.append((query, index, soft))
        return class_target, pairs

    def forward(
        self,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        targets: list[dict],
        query_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if query_mask is None:
            query_mask = torch.ones(pred_logits.shape[:2], dtype=torch.bool)
        check_query_mask(query_mask, pred_logits, "DenseQueryLoss")
        class_target, pairs = self.soft_targets(pred_logits, pred_boxes, targets, query_mask)
        with torch.autocast(pred_logits.device.type, enabled=False):
            logits, boxes = pred_logits.float(), pred_boxes.float()
            normaliser = max(float(sum(soft.sum() for _, _, soft in pairs)), 1.0)
            loss_class = quality_focal_loss(logits, class_target, self.beta)
            loss_class = (loss_class * query_mask[..., None].to(logits.device)).sum() / normaliser
            loss_giou = boxes.sum() * 0.0
            for i, ((query, index, soft), target) in enumerate(zip(pairs, targets, strict=True)):
                if len(query) == 0:
                    continue
                gt = box_cxcywh_to_xyxy(target["boxes"].to(boxes.device).float()[index])
                giou = paired_generalized_box_iou(box_cxcywh_to_xyxy(boxes[i, query]), gt)
                loss_giou = loss_giou + ((1.0 - giou) * soft).sum()
            loss_giou = loss_giou / normaliser
        return {
            "loss_class": self.class_weight * loss_class,
            "loss_giou": self.giou_weight * loss_giou,
        }
