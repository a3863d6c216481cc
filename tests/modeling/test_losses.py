"""Focal loss / focal matching cost against float64 hand formulas and torchvision, and the
element-wise GIoU against hand values and the pairwise one."""

import math

import pytest
import torch
import torchvision
from torch.testing import assert_close

from detr_efficient.layers.box_ops import (
    box_iou,
    generalized_box_iou,
    paired_box_iou,
    paired_generalized_box_iou,
)
from detr_efficient.modeling.losses import focal_class_cost, sigmoid_focal_loss


def hand_focal(x: float, t: float, alpha: float, gamma: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    positive = -alpha * (1 - p) ** gamma * math.log(p)
    negative = -(1 - alpha) * p**gamma * math.log(1 - p)
    return t * positive + (1 - t) * negative


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0), (0.9, 1.5)])
def test_focal_loss_matches_hand_formula(alpha, gamma):
    logits = torch.tensor([[-3.0, -0.5, 0.0], [0.7, 2.0, 6.0]])
    targets = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    loss = sigmoid_focal_loss(logits, targets, alpha, gamma)
    expected = torch.tensor(
        [
            [hand_focal(x, t, alpha, gamma) for x, t in zip(row_x, row_t, strict=True)]
            for row_x, row_t in zip(logits.tolist(), targets.tolist(), strict=True)
        ],
        dtype=torch.float64,
    )
    assert loss.shape == logits.shape
    assert_close(loss.double(), expected, rtol=1e-5, atol=1e-7)


def test_focal_loss_matches_torchvision_with_soft_targets():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 5, generator=generator, dtype=torch.float64) * 4
    targets = torch.rand(4, 7, 5, generator=generator, dtype=torch.float64)
    targets[0] = (targets[0] > 0.5).double()
    expected = torchvision.ops.sigmoid_focal_loss(logits, targets, 0.25, 2.0, reduction="none")
    assert_close(sigmoid_focal_loss(logits, targets, 0.25, 2.0), expected)


def test_focal_loss_gradient_matches_float64():
    logits = torch.tensor([[-1.5, 0.3], [2.2, -0.1]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    sigmoid_focal_loss(logits, targets).sum().backward()
    reference = logits.detach().clone().requires_grad_(True)
    torchvision.ops.sigmoid_focal_loss(reference, targets, reduction="sum").backward()
    assert_close(logits.grad, reference.grad)


def test_focal_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="targets"):
        sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), gamma=-1.0)


def test_focal_class_cost_is_positive_minus_negative_focal_loss():
    logits = torch.tensor([[-4.0, -0.2, 0.0, 1.3, 5.0]])
    cost = focal_class_cost(logits, 0.25, 2.0)
    expected = torch.tensor(
        [[hand_focal(x, 1.0, 0.25, 2.0) - hand_focal(x, 0.0, 0.25, 2.0) for x in logits[0]]],
        dtype=torch.float64,
    )
    assert_close(cost.double(), expected, rtol=1e-5, atol=1e-6)
    assert (cost.diff(dim=-1) < 0).all()  # more confident → cheaper


def test_focal_class_cost_is_finite_when_saturated():
    cost = focal_class_cost(torch.tensor([-200.0, 200.0]))
    assert torch.isfinite(cost).all()


def test_paired_giou_hand_values():
    boxes1 = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    boxes2 = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 3.0, 3.0]])
    # identical → 1; disjoint: iou 0, hull 3, union 2 → -1/3; overlap 1 of union 7, hull 9.
    expected = torch.tensor([1.0, -1.0 / 3.0, 1.0 / 7.0 - 2.0 / 9.0])
    assert_close(paired_generalized_box_iou(boxes1, boxes2), expected)


def test_paired_giou_is_the_diagonal_and_broadcasts_to_the_pairwise_one():
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(6, 2, 2, generator=generator, dtype=torch.float64)
    boxes1 = torch.cat([corners.min(1).values, corners.max(1).values], dim=1)
    corners = torch.rand(6, 2, 2, generator=generator, dtype=torch.float64)
    boxes2 = torch.cat([corners.min(1).values, corners.max(1).values], dim=1)
    pairwise = generalized_box_iou(boxes1, boxes2)
    assert_close(paired_generalized_box_iou(boxes1, boxes2), pairwise.diagonal())
    assert_close(paired_generalized_box_iou(boxes1[:, None], boxes2[None]), pairwise)


def test_pairwise_iou_and_giou_match_torchvision():
    torchvision_ops = pytest.importorskip("torchvision.ops")
    generator = torch.Generator().manual_seed(2)
    corners = torch.rand(2, 40, 2, 2, generator=generator, dtype=torch.float64)
    boxes1, boxes2 = torch.cat([corners.min(2).values, corners.max(2).values], dim=2)
    boxes2[:5] = boxes1[:5]  # identical pairs
    boxes2[5] = boxes1[5] + torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)  # disjoint
    iou, union = box_iou(boxes1, boxes2)
    assert_close(iou, torchvision_ops.box_iou(boxes1, boxes2))
    areas = (boxes1[:, 2:] - boxes1[:, :2]).prod(1)[:, None]
    areas = areas + (boxes2[:, 2:] - boxes2[:, :2]).prod(1)[None, :]
    assert_close(union, areas - iou * union)  # union = area1 + area2 - intersection
    assert_close(
        generalized_box_iou(boxes1, boxes2), torchvision_ops.generalized_box_iou(boxes1, boxes2)
    )
    assert_close(paired_box_iou(boxes1, boxes2), torchvision_ops.box_iou(boxes1, boxes2).diagonal())


def test_paired_giou_rejects_malformed_boxes():
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="boxes2"):
        paired_generalized_box_iou(good, torch.tensor([[1.0, 0.0, 0.5, 1.0]]))
    with pytest.raises(ValueError, match="boxes1"):
        paired_generalized_box_iou(torch.zeros(1, 3), good)


def test_giou_names_the_malformed_or_nan_argument():
    good = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    for bad in ([[1.0, 0.0, 0.5, 1.0]], [[0.0, float("nan"), 1.0, 1.0]]):
        with pytest.raises(ValueError, match="'boxes1' holds boxes"):
            generalized_box_iou(torch.tensor(bad), good)
        with pytest.raises(ValueError, match="'boxes2' holds boxes"):
            generalized_box_iou(good, torch.tensor(bad))
    assert generalized_box_iou(good, good).item() == 1.0
