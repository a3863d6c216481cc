"""Plain PyTorch definitions of the kernels' semantics, used by the tests as the reference."""

from __future__ import annotations

import torch


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair: ``[N, 4]`` x ``[M, 4]`` xyxy → ``[N, M]``."""
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    size = (bottom_right - top_left).clamp(min=0)
    intersection = size[..., 0] * size[..., 1]
    return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: visit boxes by descending score (ties: lower index first); keep a box
    unless a kept box overlaps it with IoU > ``iou_threshold``. ``[N, 4]``, ``[N]`` → ``[K]``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(order[rank])
        suppressed |= iou[rank].double() > iou_threshold  # compared in double, as torchvision
    return torch.stack(keep) if keep else order.new_empty(0)


def batched_nms_reference(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    valid: torch.Tensor | None = None,
    max_keep: int | None = None,
) -> torch.Tensor:
    """``nms_reference`` on each image's valid boxes, first ``max_keep`` survivors kept:
    ``[B, N, 4]``, ``[B, N]`` → keep mask ``[B, N]`` bool."""
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    for b in range(scores.shape[0]):
        candidates = torch.arange(scores.shape[1]) if valid is None else valid[b].nonzero()[:, 0]
        kept = candidates[nms_reference(boxes[b, candidates], scores[b, candidates], iou_threshold)]
        keep[b, kept[:max_keep]] = True
    return keep


def select_topk_reference(
    scores: torch.Tensor, k: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per image: the ``k[b]`` best valid tokens by ``torch.sort(descending, stable)``,
    padded with -1 to ``min(max(k), N)``: ``[B, N]`` → ``[B, K]`` int64."""
    width = min(int(k.max()), scores.shape[1]) if len(k) else 0
    out = torch.full((scores.shape[0], width), -1, dtype=torch.int64)
    for b in range(scores.shape[0]):
        candidates = torch.arange(scores.shape[1]) if valid is None else valid[b].nonzero()[:, 0]
        order = torch.sort(scores[b, candidates], descending=True, stable=True).indices
        chosen = candidates[order][: int(k[b])]
        out[b, : len(chosen)] = chosen
    return out


def gather_tokens_reference(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The usual ``gather`` with a materialised ``repeat`` index: ``[B, N, C]``, ``[B, K]`` →
    ``[B, K, C]``, zero rows where the index is -1."""
    rows = index.clamp(min=0).unsqueeze(-1).repeat(1, 1, x.shape[2])
    gathered = torch.gather(x, 1, rows)
    return torch.where((index >= 0).unsqueeze(-1), gathered, torch.zeros_like(gathered))


def scatter_tokens_reference(
    x: torch.Tensor, index: torch.Tensor, src: torch.Tensor
) -> torch.Tensor:
    """A per-image loop of row assignments: a copy of ``x`` ``[B, N, C]`` with rows
    ``index[b, k] >= 0`` replaced by ``src[b, k]``."""
    out = x.clone()
    for b in range(x.shape[0]):
        chosen = index[b] >= 0
        out[b, index[b, chosen]] = src[b, chosen]
    return out


def _sample_levels(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
) -> torch.Tensor:
    """Bilinear samples of every level: value ``[B, S, H, D]``, locations
    ``[B, Q, H, L, P, 2]`` (normalised x, y) → ``[B, H, D, Q, L, P]``; zero padding and
    ``align_corners=False``, exactly ``F.grid_sample`` on ``2 * loc - 1``."""
    batch, _, heads, channels = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    samples = []
    for level in range(levels):
        height, width = (int(s) for s in spatial_shapes[level])
        start = int(level_start_index[level])
        value_map = value[:, start : start + height * width]  # [B, H_l * W_l, H, D]
        value_map = value_map.permute(0, 2, 3, 1).reshape(batch * heads, channels, height, width)
        grid = 2 * sampling_locations[:, :, :, level] - 1  # [B, Q, H, P, 2]
        grid = grid.transpose(1, 2).reshape(batch * heads, queries, points, 2)
        sampled = torch.nn.functional.grid_sample(
            value_map, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [B * H, D, Q, P]
        samples.append(sampled.reshape(batch, heads, channels, queries, points))
    return torch.stack(samples, dim=4)


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention: the attention-weighted sum of bilinear samples of
    every level and point. value ``[B, S, H, D]``, locations ``[B, Q, H, L, P, 2]``,
    weights ``[B, Q, H, L, P]`` → ``[B, Q, H * D]``."""
    batch, _, heads, channels = value.shape
    queries = sampling_locations.shape[1]
    samples = _sample_levels(value, spatial_shapes, level_start_index, sampling_locations)
    weights = attention_weights.permute(0, 2, 1, 3, 4).unsqueeze(2)  # [B, H, 1, Q, L, P]
    out = (samples * weights).sum(dim=(4, 5))  # [B, H, D, Q]
    return out.permute(0, 3, 1, 2).reshape(batch, queries, heads * channels)


def key_aware_deform_attn_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
) -> torch.Tensor:
    """Key-aware deformable attention (Lite DETR): keys and values are sampled at the same
    points; the weights are ``softmax`` over all L * P points of a head of
    ``q · k / sqrt(D)``. query ``[B, Q, H, D]``, key and value ``[B, S, H, D]``, locations
    ``[B, Q, H, L, P, 2]`` → ``[B, Q, H * D]``."""
    batch, queries, heads, channels = query.shape
    keys = _sample_levels(key, spatial_shapes, level_start_index, sampling_locations)
    values = _sample_levels(value, spatial_shapes, level_start_index, sampling_locations)
    keys = keys.flatten(4)  # [B, H, D, Q, L * P]
    values = values.flatten(4)
    q = query.permute(0, 2, 3, 1).unsqueeze(-1)  # [B, H, D, Q, 1]
    weights = ((q * keys).sum(dim=2) / channels**0.5).softmax(dim=-1)  # [B, H, Q, L * P]
    out = (values * weights.unsqueeze(2)).sum(dim=-1)  # [B, H, D, Q]
    return out.permute(0, 3, 1, 2).reshape(batch, queries, heads * channels)
