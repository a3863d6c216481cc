"""A Sparse R-CNN refinement stage with DDQ's query distinctness enhancement: each query
reads its box's RoI features through a dynamic (query-generated) interaction and predicts
class logits and a refined box."""

from __future__ import annotations

import math

import torch
from torch import nn

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh

__all__ = ["DynamicInteraction", "RefinementStage", "apply_box_deltas"]

_MAX_LOG_SCALE = math.log(1000.0 / 16)


def apply_box_deltas(deltas: torch.Tensor, boxes: torch.Tensor, weights=(2.0, 2.0, 1.0, 1.0)):
    """R-CNN box deltas ``[N, 4]`` (dx, dy, dw, dh, divided by ``weights``) applied to xyxy
    ``boxes`` ``[N, 4]`` → xyxy; ``dw``, ``dh`` clamped at log(1000 / 16), the default of
    Detectron2 and mmdet."""
    cxcywh = box_xyxy_to_cxcywh(boxes.float())
    d = deltas.float() / deltas.new_tensor(weights).float()
    centre = cxcywh[:, :2] + d[:, :2] * cxcywh[:, 2:]
    size = cxcywh[:, 2:] * d[:, 2:].clamp(max=_MAX_LOG_SCALE).exp()
    return box_cxcywh_to_xyxy(torch.cat([centre, size], dim=-1))


class DynamicInteraction(nn.Module):
    """Sparse R-CNN's dynamic instance interaction: each query generates two matrices
    (``[C, D]`` and ``[D, C]``) applied to its RoI features ``[N, P, C]`` (P = 7×7 bins),
    each followed by LayerNorm + ReLU; the flattened result is mapped back to ``[N, C]``."""

    def __init__(self, embed_dim: int, dynamic_dim: int = 64, bins: int = 49) -> None:
        super().__init__()
        self.embed_dim, self.dynamic_dim = embed_dim, dynamic_dim
        self.dynamic_layer = nn.Linear(embed_dim, 2 * embed_dim * dynamic_dim)
        self.norm1 = nn.LayerNorm(dynamic_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.out_layer = nn.Linear(embed_dim * bins, embed_dim)
        self.norm3 = nn.LayerNorm(embed_dim)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, queries: torch.Tensor, roi_features: torch.Tensor) -> torch.Tensor:
        """queries ``[N, C]``, roi_features ``[N, P, C]`` → ``[N, C]``."""
        params = self.dynamic_layer(queries)
        size = self.embed_dim * self.dynamic_dim
        first = params[:, :size].view(-1, self.embed_dim, self.dynamic_dim)
        second = params[:, size:].view(-1, self.dynamic_dim, self.embed_dim)
        x = self.activation(self.norm1(torch.bmm(roi_features, first)))
        x = self.activation(self.norm2(torch.bmm(x, second)))
        return self.activation(self.norm3(self.out_layer(x.flatten(1))))


def _tower(embed_dim: int, layers: int) -> nn.Sequential:
    modules = []
    for _ in range(layers):
        modules += [nn.Linear(embed_dim, embed_dim, bias=False), nn.LayerNorm(embed_dim)]
        modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)


class RefinementStage(nn.Module):
    """One DDQ R-CNN stage over ``Q`` queries per image.

    1. Query distinctness enhancement: the RoI features averaged to 1×1 are concatenated to
       the query and mapped back to ``embed_dim``.
    2. Self-attention among the queries (with the distinct-query mask), add & norm.
    3. ``DynamicInteraction`` with the RoI features, add & norm; FFN, add & norm.
    4. Heads: a 1-layer tower + linear → class logits; a 3-layer tower + linear → deltas
       refining the box (``apply_box_deltas``).
    """

    def __init__(
        self,
        embed_dim: int,
        num_classes: int,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        dropout: float = 0.0,
        dynamic_dim: int = 64,
        pooler_resolution: int = 7,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.enhance = nn.Linear(2 * embed_dim, embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.interaction = DynamicInteraction(embed_dim, dynamic_dim, pooler_resolution**2)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, embed_dim),
        )
        self.norm3 = nn.LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.cls_tower, self.reg_tower = _tower(embed_dim, 1), _tower(embed_dim, 3)
        self.class_logits = nn.Linear(embed_dim, num_classes)
        self.box_deltas = nn.Linear(embed_dim, 4)
        # As Sparse R-CNN's and DDQ's head (mmdet's DIIHead): every matrix Xavier, the
        # delta layer included, so that its towers get gradients from the first step.
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        nn.init.constant_(self.class_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self,
        queries: torch.Tensor,
        roi_features: torch.Tensor,
        boxes: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """queries ``[B, Q, C]``, roi_features ``[B * Q, C, R, R]``, boxes ``[B, Q, 4]`` xyxy in
        pixels, attn_mask bool ``[B * heads, Q, Q]`` (True = may not attend) → (queries,
        class logits ``[B, Q, K]``, refined boxes ``[B, Q, 4]`` xyxy)."""
        batch, num, dim = queries.shape
        pooled = roi_features.mean(dim=(2, 3)).view(batch, num, dim)
        queries = self.enhance(torch.cat([queries, pooled.to(queries.dtype)], dim=-1))
        attended = self.self_attn(
            queries, queries, queries, attn_mask=attn_mask, need_weights=False
        )[0]
        queries = self.norm1(queries + self.dropout(attended))
        rois = roi_features.flatten(2).transpose(1, 2).to(queries.dtype)  # [B*Q, R*R, C]
        interacted = self.interaction(queries.reshape(batch * num, dim), rois)
        queries = self.norm2(queries + self.dropout(interacted.view(batch, num, dim)))
        queries = self.norm3(queries + self.dropout(self.ffn(queries)))
        logits = self.class_logits(self.cls_tower(queries))
        deltas = self.box_deltas(self.reg_tower(queries))
        refined = apply_box_deltas(deltas.reshape(-1, 4), boxes.reshape(-1, 4).detach())
        return queries, logits, refined.view(batch, num, 4)
