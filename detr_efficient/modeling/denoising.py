"""DINO's contrastive denoising (CDN) queries: noised copies of the ground truth that the
decoder learns to reconstruct (positives) or reject (negatives)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, inverse_sigmoid

__all__ = ["ContrastiveDenoising", "DenoisingQueries", "denoising_attn_mask"]


@dataclass
class DenoisingQueries:
    """content ``[B, P, C]``, boxes ``[B, P, 4]`` (inverse-sigmoid cxcywh), meta: the
    ``dn_meta`` the criterion reads ({"num_groups": G, "group_size": S, "max_gts": M},
    P = G * S, S = 2 * M; in group g, target j's positive is query g*S + j and its negative
    g*S + M + j)."""

    content: torch.Tensor
    boxes: torch.Tensor
    meta: dict[str, int]


def denoising_attn_mask(num_groups: int, group_size: int, num_queries: int, device) -> torch.Tensor:
    """bool ``[P + Q, P + Q]`` (True = may not attend), P = num_groups * group_size: the
    matching queries do not see the denoising ones, and each group sees only itself."""
    dn = num_groups * group_size
    mask = torch.zeros(dn + num_queries, dn + num_queries, dtype=torch.bool, device=device)
    mask[dn:, :dn] = True
    group = torch.arange(dn, device=device) // group_size
    mask[:dn, :dn] = group[:, None] != group[None, :]
    return mask


class ContrastiveDenoising(nn.Module):
    """Builds the denoising queries for a batch of targets.

    ``num_dn_queries`` is DINO's ``dn_number``, a budget of positive + negative *pairs*:
    G = budget // M groups (at least 1) of 2 M queries each, for the batch's largest target
    count M, so about 2 × budget queries (DINO's code: 100 → about 200). Each label is replaced by a
    random class with probability ``label_noise_ratio / 2``. Box corners move by up to
    ``box_noise_scale`` times half the box size: by less than that for positives, between
    one and two times it for negatives. ``label_embed`` maps (noised) labels to content.
    ``eps``: the clamp of ``inverse_sigmoid`` on the noised boxes (DINO's code: 1e-3).
    """

    def __init__(
        self,
        num_classes: int,
        embed_dim: int = 256,
        num_dn_queries: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if num_dn_queries < 1:
            raise ValueError(
                f"ContrastiveDenoising: 'num_dn_queries' must be >= 1, got {num_dn_queries}"
            )
        self.num_classes = num_classes
        self.num_dn_queries = num_dn_queries
        self.label_noise_ratio = label_noise_ratio
        self.box_noise_scale = box_noise_scale
        self.eps = float(eps)
        self.label_embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, targets: list[dict[str, torch.Tensor]]) -> DenoisingQueries | None:
        """targets: per image {"labels": int64 [N_i], "boxes": [N_i, 4] normalised cxcywh};
        None when the batch holds no target."""
        counts = [len(t["labels"]) for t in targets]
        max_gts = max(counts, default=0)
        if max_gts == 0:
            return None
        device = self.label_embed.weight.device
        groups = max(1, self.num_dn_queries // max_gts)
        group_size = 2 * max_gts
        batch = len(targets)

        # Padded targets [B, M], repeated per group and polarity: [B, G, 2, M].
        labels = torch.zeros(batch, max_gts, dtype=torch.int64, device=device)
        boxes = torch.zeros(batch, max_gts, 4, device=device)
        present = torch.zeros(batch, max_gts, dtype=torch.bool, device=device)
        for i, target in enumerate(targets):
            labels[i, : counts[i]] = target["labels"].to(device)
            boxes[i, : counts[i]] = target["boxes"].to(device=device, dtype=boxes.dtype)
            present[i, : counts[i]] = True
        shape = (batch, groups, 2, max_gts)
        labels = labels[:, None, None].expand(shape).clone()
        boxes = boxes[:, None, None].expand(*shape, 4)
        present = present[:, None, None].expand(shape)

        if self.label_noise_ratio > 0:
            flip = torch.rand(shape, device=device) < self.label_noise_ratio * 0.5
            random_labels = torch.randint_like(labels, 0, self.num_classes)
            labels = torch.where(flip, random_labels, labels)
        if self.box_noise_scale > 0:
            corners = box_cxcywh_to_xyxy(boxes)
            half = boxes[..., 2:].repeat(1, 1, 1, 1, 2) / 2  # (w/2, h/2, w/2, h/2)
            magnitude = torch.rand(*shape, 4, device=device)
            magnitude[:, :, 1] += 1.0  # negatives
            sign = torch.randint(0, 2, (*shape, 4), device=device).float() * 2 - 1
            corners = corners + sign * magnitude * half * self.box_noise_scale
            boxes = box_xyxy_to_cxcywh(corners.clamp(0.0, 1.0))

        content = self.label_embed(labels) * present[..., None]
        unact = inverse_sigmoid(boxes, self.eps) * present[..., None]
        meta = {"num_groups": groups, "group_size": group_size, "max_gts": max_gts}
        return DenoisingQueries(
            content.reshape(batch, groups * group_size, -1),
            unact.reshape(batch, groups * group_size, 4),
            meta,
        )
