"""DDQ-FCN's dense head: an FCOS-like head (shared over the FPN levels, GroupNorm towers, no
centerness) predicting class logits and box distances at every feature-map point."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["DenseHead", "level_points"]


def _tower(channels: int, convs: int, groups: int) -> nn.Sequential:
    layers = []
    for _ in range(convs):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def level_points(height: int, width: int, stride: int, device) -> torch.Tensor:
    """Centres ``[H * W, 2]`` (x, y) in input pixels of a level's points, row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


class DenseHead(nn.Module):
    """Class logits and boxes at every point of every level.

    ``convs`` conv3×3 + GroupNorm(``groups``) + ReLU per tower (classification and
    regression), then a conv3×3 to ``num_classes`` logits (bias at ``prior_prob``) and to 4
    distances (left, top, right, bottom) = ``exp(scale_l * x) * stride_l`` with a learned
    scale per level. ``forward(features)``: ``L`` maps ``[B, C, H_l, W_l]`` → (logits
    ``[B, S, K]``, boxes ``[B, S, 4]`` xyxy in input pixels, the classification tower's
    features ``[B, S, C]``), S = Σ H_l W_l, levels in order, points row-major."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        strides: tuple[int, ...] = (8, 16, 32, 64, 128),
        convs: int = 4,
        groups: int = 32,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        self.cls_tower = _tower(in_channels, convs, groups)
        self.reg_tower = _tower(in_channels, convs, groups)
        self.cls_logits = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(features) != len(self.strides):
            raise ValueError(
                f"DenseHead: got {len(features)} feature levels for strides {self.strides}"
            )
        logits, boxes, towers = [], [], []
        for level, (feature, stride) in enumerate(zip(features, self.strides, strict=True)):
            height, width = feature.shape[-2:]
            tower = self.cls_tower(feature)
            towers.append(tower.flatten(2).transpose(1, 2))
            logits.append(self.cls_logits(tower).flatten(2).transpose(1, 2))
            raw = self.bbox_pred(self.reg_tower(feature)).flatten(2).transpose(1, 2).float()
            distances = (self.scales[level] * raw).clamp(max=10.0).exp() * stride
            points = level_points(height, width, stride, feature.device)[None]
            boxes.append(torch.cat([points - distances[..., :2], points + distances[..., 2:]], -1))
        return torch.cat(logits, dim=1), torch.cat(boxes, dim=1), torch.cat(towers, dim=1)
