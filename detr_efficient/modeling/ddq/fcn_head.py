"""DDQ-FCN's dense head: an FCOS-like head (shared over the FPN levels, GroupNorm towers)
predicting class scores and box distances at every feature-map point. As in DDQ's code, a
point's score is the geometric mean of its class probability and an objectness probability
from the regression tower, and training adds a second set of predictors on the same towers
for the one-to-many loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DenseHead", "DenseOutputs", "DensePredictor", "geometric_mean_logit", "level_points"]


def _init_convs(module: nn.Module) -> None:
    """Weights N(0, 0.01) and zero biases for every conv of ``module``."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)


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


def geometric_mean_logit(class_logits: torch.Tensor, objectness: torch.Tensor) -> torch.Tensor:
    """The logit of ``sqrt(sigmoid(class_logits) * sigmoid(objectness))`` (objectness
    broadcast over the classes), computed in float32 log space; probabilities are capped
    below 1 - 1e-7 so that the logit and its gradient stay finite."""
    log_score = -0.5 * (F.softplus(-class_logits.float()) + F.softplus(-objectness.float()))
    log_score = log_score.clamp(max=-1e-7)
    return log_score - torch.log(-torch.expm1(log_score))


class DensePredictor(nn.Module):
    """Score logits and boxes from the two towers' maps of one level.

    A conv3×3 to ``num_classes`` class logits (bias at ``prior_prob``), an objectness branch
    on the regression tower (conv1×1 to C/4, ReLU, conv3×3 to 1; bias ``objectness_bias``),
    and a conv3×3 to 4 distances (left, top, right, bottom) = ``scale_l * exp(x) * stride_l``
    with a learned scale per level. The score logit is :func:`geometric_mean_logit`."""

    def __init__(
        self, channels: int, num_classes: int, levels: int, prior_prob: float, objectness_bias
    ) -> None:
        super().__init__()
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.objectness = nn.Sequential(
            nn.Conv2d(channels, channels // 4, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 4, 1, 3, padding=1),
        )
        self.bbox_pred = nn.Conv2d(channels, 4, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(levels))
        _init_convs(self)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.constant_(self.objectness[-1].bias, objectness_bias)

    def forward(self, cls_map, reg_map, level: int, stride: int, points):
        """Maps ``[B, C, H, W]`` → (score logits ``[B, H*W, K]``, boxes ``[B, H*W, 4]`` xyxy
        in input pixels around ``points`` ``[H*W, 2]``)."""
        logits = geometric_mean_logit(self.cls_logits(cls_map), self.objectness(reg_map))
        raw = self.bbox_pred(reg_map).float().clamp(max=10.0)
        distances = (self.scales[level] * raw.exp() * stride).flatten(2).transpose(1, 2)
        boxes = torch.cat([points - distances[..., :2], points + distances[..., 2:]], -1)
        return logits.flatten(2).transpose(1, 2), boxes


@dataclass
class DenseOutputs:
    """The head's ``logits`` ``[B, S, K]`` (score logits), ``boxes`` ``[B, S, 4]`` (xyxy in input
    pixels) and ``towers`` ``[B, S, 2C]`` (the classification and regression towers' features,
    concatenated), S = Σ H_l W_l, levels in order, points row-major; when asked for, the
    one-to-many predictor's ``aux_logits`` and ``aux_boxes`` (else None)."""

    logits: torch.Tensor
    boxes: torch.Tensor
    towers: torch.Tensor
    aux_logits: torch.Tensor | None = None
    aux_boxes: torch.Tensor | None = None


class DenseHead(nn.Module):
    """Score logits and boxes at every point of every level.

    ``convs`` conv3×3 + GroupNorm(``groups``) + ReLU per tower (classification and
    regression), then a :class:`DensePredictor` (objectness bias 0) and, with ``aux=True``,
    a second one for the one-to-many loss in training (objectness bias at ``prior_prob``), as
    in DDQ's code. ``forward(features, with_aux=False)``: ``L`` maps ``[B, C, H_l, W_l]`` →
    :class:`DenseOutputs`, with the second predictor's outputs when ``with_aux``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        strides: tuple[int, ...] = (8, 16, 32, 64, 128),
        convs: int = 4,
        groups: int = 32,
        prior_prob: float = 0.01,
        aux: bool = True,
    ) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        self.cls_tower = _tower(in_channels, convs, groups)
        self.reg_tower = _tower(in_channels, convs, groups)
        _init_convs(self)
        levels, prior_logit = len(self.strides), -math.log((1 - prior_prob) / prior_prob)
        self.predictor = DensePredictor(in_channels, num_classes, levels, prior_prob, 0.0)
        self.aux_predictor = (
            DensePredictor(in_channels, num_classes, levels, prior_prob, prior_logit)
            if aux
            else None
        )

    def forward(self, features: list[torch.Tensor], with_aux: bool = False) -> DenseOutputs:
        if len(features) != len(self.strides):
            raise ValueError(
                f"DenseHead: got {len(features)} feature levels for strides {self.strides}"
            )
        if with_aux and self.aux_predictor is None:
            raise ValueError("DenseHead: with_aux=True needs a head built with aux=True")
        main, aux, towers = [], [], []
        for level, (feature, stride) in enumerate(zip(features, self.strides, strict=True)):
            height, width = feature.shape[-2:]
            cls_map, reg_map = self.cls_tower(feature), self.reg_tower(feature)
            towers.append(torch.cat([cls_map, reg_map], 1).flatten(2).transpose(1, 2))
            points = level_points(height, width, stride, feature.device)[None]
            main.append(self.predictor(cls_map, reg_map, level, stride, points))
            if with_aux:
                aux.append(self.aux_predictor(cls_map, reg_map, level, stride, points))
        logits, boxes = (torch.cat(parts, dim=1) for parts in zip(*main, strict=True))
        outputs = DenseOutputs(logits, boxes, torch.cat(towers, dim=1))
        if with_aux:
            outputs.aux_logits, outputs.aux_boxes = (
                torch.cat(parts, dim=1) for parts in zip(*aux, strict=True)
            )
        return outputs
