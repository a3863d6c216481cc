"""One-to-one Hungarian matching of DETR predictions to ground-truth boxes (focal class cost,
L1 and GIoU box costs), plus the input checks it shares with the set criterion."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, paired_generalized_box_iou

from .assignment import assign_all
from .losses import focal_class_cost

__all__ = ["HungarianMatcher", "check_predictions", "check_query_mask", "check_targets"]


def check_predictions(pred_logits: torch.Tensor, pred_boxes: torch.Tensor, where: str = "") -> None:
    """Shape checks: ``pred_logits`` ``[B, Q, K]`` (K >= 1) and ``pred_boxes`` ``[B, Q, 4]``;
    ``where`` (e.g. ``" in outputs['enc_outputs']"``) is appended to the error message."""
    if pred_logits.dim() != 3 or pred_logits.shape[-1] < 1:
        raise ValueError(f"'pred_logits'{where} must be [B, Q, K], got {tuple(pred_logits.shape)}")
    if pred_boxes.shape != (*pred_logits.shape[:2], 4):
        raise ValueError(
            f"'pred_boxes'{where} must be [B, Q, 4] = {(*pred_logits.shape[:2], 4)}, "
            f"got {tuple(pred_boxes.shape)}"
        )


def check_query_mask(query_mask: torch.Tensor, pred_logits: torch.Tensor, where: str) -> None:
    """``query_mask`` must be bool ``[B, Q]`` for ``pred_logits`` ``[B, Q, K]``; ``where``
    names the caller in the message."""
    if query_mask.shape != pred_logits.shape[:2] or query_mask.dtype != torch.bool:
        raise ValueError(
            f"{where}: 'query_mask' must be bool {tuple(pred_logits.shape[:2])}, "
            f"got {query_mask.dtype} {tuple(query_mask.shape)}"
        )


def check_targets(targets: list[dict], batch_size: int) -> list[int]:
    """Structure checks of ``targets`` (``batch_size`` dicts of int ``labels`` ``[N_i]`` and
    float ``boxes`` ``[N_i, 4]``) → ``[N_i]``. Values are checked where the costs are built."""
    if not isinstance(targets, (list, tuple)) or len(targets) != batch_size:
        raise ValueError(f"'targets' must be a list of {batch_size} dicts (one per image)")
    sizes = []
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or "labels" not in target or "boxes" not in target:
            raise ValueError(f"targets[{i}] must be a dict with 'labels' and 'boxes'")
        labels, boxes = target["labels"], target["boxes"]
        if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"targets[{i}]['labels'] must be a 1-D integer tensor")
        if boxes.shape != (labels.shape[0], 4) or not boxes.dtype.is_floating_point:
            raise ValueError(
                f"targets[{i}]['boxes'] must be a float [{labels.shape[0]}, 4] tensor, "
                f"got {boxes.dtype} {tuple(boxes.shape)}"
            )
        sizes.append(labels.shape[0])
    return sizes


def _check_values(
    pred_logits: torch.Tensor, pred_boxes: torch.Tensor, labels: torch.Tensor, boxes: torch.Tensor
) -> None:
    """Value checks with a single device sync; ``labels``/``boxes`` are all targets concatenated."""
    num_classes = pred_logits.shape[-1]
    flags = torch.stack(
        [
            torch.isfinite(pred_logits).all(),
            torch.isfinite(pred_boxes).all(),
            (pred_boxes[..., 2:] >= 0).all(),
            ((labels >= 0) & (labels < num_classes)).all(),
            torch.isfinite(boxes).all(),
            (boxes[:, 2:] >= 0).all(),
        ]
    ).tolist()
    messages = [
        "'pred_logits' holds NaN or inf",
        "'pred_boxes' holds NaN or inf",
        "'pred_boxes' holds a negative width or height",
        f"'targets' labels must lie in [0, {num_classes})",
        "'targets' boxes hold NaN or inf",
        "'targets' boxes hold a negative width or height",
    ]
    for ok, message in zip(flags, messages, strict=True):
        if not ok:
            raise ValueError(f"HungarianMatcher: {message}")


class HungarianMatcher(nn.Module):
    """Matches the ``Q`` queries of each image one-to-one with its ``N_i`` targets, minimising
    ``cost_class * focal + cost_bbox * L1(cxcywh) - cost_giou * GIoU(xyxy)``."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ):
        super().__init__()
        for name, value in (
            ("cost_class", cost_class),
            ("cost_bbox", cost_bbox),
            ("cost_giou", cost_giou),
        ):
            if not value >= 0:
                raise ValueError(f"HungarianMatcher: '{name}' must be >= 0, got {value}")
        if cost_class == cost_bbox == cost_giou == 0:
            raise ValueError("HungarianMatcher: all costs are zero")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    @torch.no_grad()
    def cost_matrices(
        self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor, targets: list[dict]
    ) -> list[torch.Tensor]:
        """``pred_logits`` ``[B, Q, K]``, ``pred_boxes`` ``[B, Q, 4]`` (normalised cxcywh),
        ``targets`` (see :meth:`forward`) → per image the float32 CPU cost ``[Q, N_i]``.
        All images are costed in one batched float32 pass on the predictions' device."""
        check_predictions(pred_logits, pred_boxes)
        batch, num_queries, _ = pred_logits.shape
        sizes = check_targets(targets, batch)
        if max(sizes, default=0) == 0:
            return [torch.zeros(num_queries, 0) for _ in sizes]
        device = pred_logits.device
        labels = [t["labels"].to(device=device, dtype=torch.int64) for t in targets]
        boxes = [t["boxes"].to(device=device, dtype=torch.float32) for t in targets]
        _check_values(pred_logits, pred_boxes, torch.cat(labels), torch.cat(boxes))
        labels = pad_sequence(labels, batch_first=True)  # [B, M], padding: class 0
        boxes = pad_sequence(boxes, batch_first=True, padding_value=0.5)  # [B, M, 4]
        with torch.autocast(device.type, enabled=False):
            logits, pred = pred_logits.float(), pred_boxes.float()
            class_cost = focal_class_cost(logits, self.focal_alpha, self.focal_gamma)
            class_cost = class_cost.gather(2, labels[:, None, :].expand(-1, num_queries, -1))
            l1_cost = torch.cdist(pred, boxes, p=1)
            giou = paired_generalized_box_iou(
                box_cxcywh_to_xyxy(pred)[:, :, None], box_cxcywh_to_xyxy(boxes)[:, None]
            )
            cost = self.cost_class * class_cost + self.cost_bbox * l1_cost - self.cost_giou * giou
        cost = cost.cpu()
        if not bool(torch.isfinite(cost).all()):
            raise ValueError(
                "HungarianMatcher: non-finite cost (zero-area predicted and target box?)"
            )
        return [cost[i, :, :n] for i, n in enumerate(sizes)]

    @torch.no_grad()
    def forward(
        self,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        targets: list[dict],
        query_mask: torch.Tensor | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``pred_logits`` ``[B, Q, K]`` (sigmoid logits), ``pred_boxes`` ``[B, Q, 4]``
        (normalised cxcywh), ``targets``: ``B`` dicts of ``labels`` int64 ``[N_i]`` and
        ``boxes`` ``[N_i, 4]`` (normalised cxcywh) → per image CPU int64 ``(query_index,
        target_index)``, each ``[min(Q_i, N_i)]``, sorted by query index. ``query_mask`` bool
        ``[B, Q]``: only the ``Q_i`` queries marked True take part (DDQ's distinct queries)."""
        costs = self.cost_matrices(pred_logits, pred_boxes, targets)
        if query_mask is None:
            return assign_all(costs)
        check_query_mask(query_mask, pred_logits, "HungarianMatcher")
        rows = [mask.nonzero()[:, 0] for mask in query_mask.cpu()]
        matches = assign_all([cost[r] for cost, r in zip(costs, rows, strict=True)])
        return [(r[query], target) for r, (query, target) in zip(rows, matches, strict=True)]
