"""DETR set criterion: focal classification, L1 and GIoU box losses on Hungarian-matched
(or, for denoising queries, fixed) query/target pairs, for the final decoder layer, the
auxiliary layers, the two-stage encoder proposals and the denoising groups."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, paired_generalized_box_iou

from .losses import sigmoid_focal_loss
from .matcher import check_predictions, check_targets

__all__ = ["SetCriterion", "average_num_boxes", "denoising_indices", "matched_pairs"]

LOSS_NAMES = ("loss_class", "loss_bbox", "loss_giou")
Indices = list[tuple[torch.Tensor, torch.Tensor]]


def matched_pairs(
    indices: Indices, device: torch.device, target_counts: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image ``(query, target)`` ``indices`` → (image, query, target) int64 vectors ``[M]``
    on ``device``; with ``target_counts`` (each image's number of targets) the target is
    counted into the batch's concatenated targets. One transfer: a copy from host memory
    waits for the device's queue, so one per image adds up."""
    if target_counts is not None and len(indices) != len(target_counts):
        raise ValueError(f"{len(indices)} index pairs for {len(target_counts)} images")
    if not indices:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, empty
    host = indices[0][0].device
    queries = torch.cat([q.to(host) for q, _ in indices]).long()
    per_image = torch.tensor([len(q) for q, _ in indices], device=host)
    image = torch.repeat_interleave(torch.arange(len(indices), device=host), per_image)
    target = torch.cat([t.to(host) for _, t in indices]).long()
    if target_counts is not None:
        counts = torch.tensor(target_counts, device=host)
        target = target + (counts.cumsum(0) - counts)[image]
    image, query, target = torch.stack([image, queries, target]).to(device)
    return image, query, target


def average_num_boxes(targets: list[dict], device: torch.device) -> float:
    """Target boxes in the batch, averaged over the distributed world when there is one,
    clamped to at least 1."""
    num_boxes = torch.tensor(
        float(sum(len(t["labels"]) for t in targets)), dtype=torch.float32, device=device
    )
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(num_boxes)
        num_boxes = num_boxes / dist.get_world_size()
    return max(num_boxes.item(), 1.0)


def denoising_indices(sizes: list[int], dn_meta: dict, num_queries: int) -> Indices:
    """Fixed (query, target) pairs of the positive denoising queries: target ``j < N_i`` of image
    ``i`` sits at ``g * S + j`` in every group ``g``. ``sizes``: ``[N_i]``; ``dn_meta``:
    ``num_groups`` G, ``group_size`` S = 2 M, ``max_gts`` M; ``num_queries`` must be G * S."""
    missing = {"num_groups", "group_size", "max_gts"} - set(dn_meta)
    if missing:
        raise ValueError(f"'dn_meta' lacks {sorted(missing)}")
    groups, group_size, max_gts = dn_meta["num_groups"], dn_meta["group_size"], dn_meta["max_gts"]
    if groups < 1:
        raise ValueError(f"'dn_meta' num_groups must be >= 1, got {groups}")
    if group_size != 2 * max_gts or num_queries != groups * group_size:
        raise ValueError(
            f"'dn_meta' {dn_meta} needs group_size == 2 * max_gts and "
            f"num_groups * group_size == {num_queries} denoising queries"
        )
    if max(sizes, default=0) > max_gts:
        raise ValueError(f"'dn_meta' max_gts={max_gts} is below the largest target count")
    offsets = torch.arange(groups, dtype=torch.int64)[:, None] * group_size
    indices = []
    for n in sizes:
        targets = torch.arange(n, dtype=torch.int64)
        indices.append(((offsets + targets).flatten(), targets.repeat(groups)))
    return indices


class SetCriterion(nn.Module):
    """Weighted DETR losses over every supervised stage of ``outputs``; see :meth:`forward`.

    ``weight_dict`` holds ``loss_class``, ``loss_bbox`` and ``loss_giou``, used for every stage.
    ``encoder_binary_class``: the encoder proposals are trained class-agnostically (class 0
    for every box, Deformable DETR two-stage) rather than with the real labels (DINO)."""

    def __init__(
        self,
        num_classes: int,
        matcher: nn.Module,
        weight_dict: dict[str, float],
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        encoder_binary_class: bool = False,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"'num_classes' must be >= 1, got {num_classes}")
        if set(weight_dict) != set(LOSS_NAMES):
            raise ValueError(f"'weight_dict' must have exactly the keys {LOSS_NAMES}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.encoder_binary_class = encoder_binary_class

    def stage_losses(
        self,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        targets: list[dict],
        indices: Indices,
        num_boxes: float,
        query_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Unweighted float32 losses of one stage: ``pred_logits`` ``[B, Q, K]``, ``pred_boxes``
        ``[B, Q, 4]``, per-image ``(query, target)`` ``indices``. Focal loss over all ``B*Q*K``
        entries (unmatched queries toward background; only the queries ``query_mask`` ``[B,
        Q]`` marks, when given); L1 and ``1 - GIoU`` on the matched pairs; each summed and
        divided by ``num_boxes``."""
        device = pred_logits.device
        counts = [len(t["labels"]) for t in targets]
        batch_idx, query_idx, target_idx = matched_pairs(indices, device, counts)
        labels = torch.cat([t["labels"] for t in targets]).to(device)[target_idx]
        target_boxes = torch.cat([t["boxes"] for t in targets]).to(device)[target_idx]
        with torch.autocast(device.type, enabled=False):
            logits, boxes = pred_logits.float(), pred_boxes.float()
            onehot = torch.zeros_like(logits)
            onehot[batch_idx, query_idx, labels.long()] = 1.0
            loss_class = sigmoid_focal_loss(logits, onehot, self.focal_alpha, self.focal_gamma)
            if query_mask is not None:
                loss_class = loss_class * query_mask[..., None].to(device)
            losses = {"loss_class": loss_class.sum() / num_boxes}
            if query_idx.numel() == 0:
                zero = boxes.sum() * 0.0
                return {**losses, "loss_bbox": zero, "loss_giou": zero}
            matched = boxes[batch_idx, query_idx]
            target_boxes = target_boxes.float()
            giou = paired_generalized_box_iou(
                box_cxcywh_to_xyxy(matched), box_cxcywh_to_xyxy(target_boxes)
            )
            losses["loss_bbox"] = (matched - target_boxes).abs().sum() / num_boxes
            losses["loss_giou"] = (1.0 - giou).sum() / num_boxes
        return losses

    def _check_stage(self, stage: dict, where: str, batch: int, classes: tuple[int, ...]) -> None:
        """Keys and shapes of one stage's predictions: ``[batch, Q, K]`` with K in ``classes``."""
        if not isinstance(stage, dict) or "pred_logits" not in stage or "pred_boxes" not in stage:
            raise ValueError(f"{where} must be a dict with 'pred_logits' and 'pred_boxes'")
        logits = stage["pred_logits"]
        check_predictions(logits, stage["pred_boxes"], f" in {where}")
        if logits.shape[0] != batch or logits.shape[-1] not in classes:
            raise ValueError(
                f"'pred_logits' in {where} is {tuple(logits.shape)}: expected batch {batch} "
                f"and a class count in {classes}"
            )

    def weighted(self, losses: dict[str, torch.Tensor], suffix: str) -> dict[str, torch.Tensor]:
        """``stage_losses``' output weighted by ``weight_dict``, names suffixed."""
        return {f"{name}{suffix}": self.weight_dict[name] * value for name, value in losses.items()}

    def _matched_losses(
        self, stage: dict, targets: list[dict], num_boxes: float, suffix: str
    ) -> dict[str, torch.Tensor]:
        logits, boxes = stage["pred_logits"], stage["pred_boxes"]
        mask = stage.get("query_mask")
        if mask is None:
            indices = self.matcher(logits, boxes, targets)
        else:
            indices = self.matcher(logits, boxes, targets, query_mask=mask)
        losses = self.stage_losses(logits, boxes, targets, indices, num_boxes, mask)
        return self.weighted(losses, suffix)

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        """``outputs``: ``pred_logits`` ``[B, Q, K]``, ``pred_boxes`` ``[B, Q, 4]`` (normalised
        cxcywh), optional ``query_mask`` bool ``[B, Q]`` (only those queries are matched and
        classified; in any stage dict), optional ``aux_outputs`` (list of such dicts),
        ``enc_outputs`` (one such dict) and ``dn_outputs`` (``pred_logits`` ``[B, P, K]``,
        ``pred_boxes``, ``aux_outputs``, ``dn_meta``); ``targets``: ``B`` dicts of ``labels``
        ``[N_i]`` and ``boxes`` ``[N_i, 4]`` (normalised cxcywh). Returns the weighted losses
        ``loss_{class,bbox,giou}`` with suffixes ``""`` (final layer), ``_<i>`` (aux layer
        i), ``_enc``, ``_dn``, ``_dn_<i>``."""
        if not isinstance(outputs, dict) or "pred_logits" not in outputs:
            raise ValueError("'outputs' must be a dict with 'pred_logits' and 'pred_boxes'")
        batch = outputs["pred_logits"].shape[0]
        if batch == 0:
            raise ValueError("'outputs' holds an empty batch")
        sizes = check_targets(targets, batch)
        num_boxes = average_num_boxes(targets, outputs["pred_logits"].device)
        classes = (self.num_classes,)

        stages = [(outputs, "outputs", "")]
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            stages.append((aux, f"outputs['aux_outputs'][{i}]", f"_{i}"))
        losses = {}
        for stage, where, suffix in stages:
            self._check_stage(stage, where, batch, classes)
            losses.update(self._matched_losses(stage, targets, num_boxes, suffix))

        if "enc_outputs" in outputs:
            enc, enc_targets = outputs["enc_outputs"], targets
            if self.encoder_binary_class:
                classes = (1, self.num_classes)
                enc_targets = [{**t, "labels": torch.zeros_like(t["labels"])} for t in targets]
            self._check_stage(enc, "outputs['enc_outputs']", batch, classes)
            losses.update(self._matched_losses(enc, enc_targets, num_boxes, "_enc"))

        if "dn_outputs" in outputs:
            losses.update(self._denoising_losses(outputs["dn_outputs"], targets, sizes, num_boxes))
        return losses

    def _denoising_losses(
        self, dn_outputs: dict, targets: list[dict], sizes: list[int], num_boxes: float
    ) -> dict[str, torch.Tensor]:
        """Losses of the denoising queries on their fixed positive indices (no matching),
        normalised by ``num_boxes * G``."""
        if not isinstance(dn_outputs, dict) or "dn_meta" not in dn_outputs:
            raise ValueError("outputs['dn_outputs'] must be a dict with 'dn_meta'")
        meta = dn_outputs["dn_meta"]
        stages = [(dn_outputs, "outputs['dn_outputs']", "_dn")]
        for i, aux in enumerate(dn_outputs.get("aux_outputs", [])):
            stages.append((aux, f"outputs['dn_outputs']['aux_outputs'][{i}]", f"_dn_{i}"))
        losses = {}
        for stage, where, suffix in stages:
            self._check_stage(stage, where, len(sizes), (self.num_classes,))
            logits, boxes = stage["pred_logits"], stage["pred_boxes"]
            indices = denoising_indices(sizes, meta, logits.shape[1])
            stage_losses = self.stage_losses(
                logits, boxes, targets, indices, num_boxes * meta["num_groups"]
            )
            losses.update(self.weighted(stage_losses, suffix))
        return losses
