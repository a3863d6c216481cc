"""HungarianMatcher: known optimal assignments, costs against a float64 brute force over all
assignments, empty targets, bf16 autocast and input validation."""

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from detr_efficient.modeling.matcher import HungarianMatcher


def target(labels, boxes):
    return {
        "labels": torch.tensor(labels, dtype=torch.int64),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
    }


def random_boxes(generator, *shape):
    centre = torch.rand(*shape, 2, generator=generator) * 0.6 + 0.2
    size = torch.rand(*shape, 2, generator=generator) * 0.3 + 0.05
    return torch.cat([centre, size], dim=-1)


def hand_cost(logit, box, label, tbox, weights=(2.0, 5.0, 2.0), alpha=0.25, gamma=2.0) -> float:
    """Float64 cost of one (query, target) pair from scalars: focal + L1 - GIoU."""
    p = 1.0 / (1.0 + math.exp(-logit[label]))
    focal = alpha * (1 - p) ** gamma * -math.log(p + 1e-8)
    focal -= (1 - alpha) * p**gamma * -math.log(1 - p + 1e-8)
    l1 = sum(abs(a - b) for a, b in zip(box, tbox, strict=True))

    def xyxy(b):
        return b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2

    (a0, a1, a2, a3), (b0, b1, b2, b3) = xyxy(box), xyxy(tbox)
    inter = max(0.0, min(a2, b2) - max(a0, b0)) * max(0.0, min(a3, b3) - max(a1, b1))
    union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
    hull = (max(a2, b2) - min(a0, b0)) * (max(a3, b3) - min(a1, b1))
    giou = inter / union - (hull - union) / hull
    return weights[0] * focal + weights[1] * l1 - weights[2] * giou


def test_permuted_copies_of_the_targets_are_recovered():
    generator = torch.Generator().manual_seed(0)
    num_queries, num_classes = 7, 5
    sizes = [4, 2]
    targets, logits, boxes, permutations = [], [], [], []
    for n in sizes:
        labels = torch.randint(num_classes, (n,), generator=generator)
        tboxes = random_boxes(generator, n)
        targets.append({"labels": labels, "boxes": tboxes})
        perm = torch.randperm(num_queries, generator=generator)[:n]  # query holding target j
        image_logits = torch.full((num_queries, num_classes), -6.0)
        image_boxes = random_boxes(generator, num_queries)
        image_logits[perm, labels] = 6.0
        image_boxes[perm] = tboxes
        logits.append(image_logits)
        boxes.append(image_boxes)
        permutations.append(perm)
    indices = HungarianMatcher()(torch.stack(logits), torch.stack(boxes), targets)
    assert len(indices) == 2
    for (query, tgt), perm, n in zip(indices, permutations, sizes, strict=True):
        assert query.dtype == tgt.dtype == torch.int64
        assert query.device.type == tgt.device.type == "cpu"
        assert len(query) == len(tgt) == n
        assert (query.diff() > 0).all()  # sorted by query index
        assert torch.equal(query, perm[tgt])


def test_optimal_beats_greedy():
    # 1-D centres (same size): greedy takes q0-t0 (0.05) then q1-t1 (0.55), total 0.60;
    # the optimum is q0-t1 + q1-t0 = 0.25 + 0.25 = 0.50.
    targets = [target([0, 0], [[0.40, 0.5, 0.1, 0.1], [0.10, 0.5, 0.1, 0.1]])]
    pred_boxes = torch.tensor([[[0.35, 0.5, 0.1, 0.1], [0.65, 0.5, 0.1, 0.1]]])
    matcher = HungarianMatcher(cost_class=0.0, cost_bbox=1.0, cost_giou=0.0)
    query, tgt = matcher(torch.zeros(1, 2, 1), pred_boxes, targets)[0]
    assert query.tolist() == [0, 1]
    assert tgt.tolist() == [1, 0]


@pytest.mark.parametrize(("num_queries", "num_targets"), [(4, 3), (3, 3), (2, 4)])
def test_costs_and_assignment_match_float64_brute_force(num_queries, num_targets):
    generator = torch.Generator().manual_seed(10 * num_queries + num_targets)
    num_classes = 3
    logits = torch.randn(1, num_queries, num_classes, generator=generator) * 2
    boxes = random_boxes(generator, 1, num_queries)
    labels = torch.randint(num_classes, (num_targets,), generator=generator)
    targets = [{"labels": labels, "boxes": random_boxes(generator, num_targets)}]
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)

    expected = [
        [
            hand_cost(logits[0, q].tolist(), boxes[0, q].tolist(), int(labels[t]), tb.tolist())
            for t, tb in enumerate(targets[0]["boxes"])
        ]
        for q in range(num_queries)
    ]
    cost = matcher.cost_matrices(logits, boxes, targets)[0]
    assert cost.shape == (num_queries, num_targets)
    assert_close(cost.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5)

    # Brute force over every injective assignment of the smaller side.
    if num_queries >= num_targets:
        best = min(
            sum(expected[q][t] for t, q in enumerate(qs))
            for qs in itertools.permutations(range(num_queries), num_targets)
        )
    else:
        best = min(
            sum(expected[q][t] for q, t in enumerate(ts))
            for ts in itertools.permutations(range(num_targets), num_queries)
        )
    query, tgt = matcher(logits, boxes, targets)[0]
    assert len(query) == min(num_queries, num_targets)
    assert len(set(tgt.tolist())) == len(tgt)
    total = sum(expected[q][t] for q, t in zip(query.tolist(), tgt.tolist(), strict=True))
    assert total == pytest.approx(best, abs=1e-9)


def test_empty_targets_give_empty_indices():
    logits, boxes = torch.randn(2, 5, 3), torch.rand(2, 5, 4) * 0.5 + 0.1
    targets = [target([], []), target([2], [[0.5, 0.5, 0.2, 0.2]])]
    (q0, t0), (q1, t1) = HungarianMatcher()(logits, boxes, targets)
    assert q0.numel() == t0.numel() == 0 and q0.dtype == t0.dtype == torch.int64
    assert q1.numel() == t1.numel() == 1
    all_empty = HungarianMatcher()(logits, boxes, [target([], []), target([], [])])
    assert all(q.numel() == t.numel() == 0 for q, t in all_empty)


def test_bf16_autocast_matches_float32():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 4, generator=generator)
    boxes = random_boxes(generator, 2, 6)
    targets = [
        {"labels": torch.tensor([1, 3, 0]), "boxes": boxes[0, [4, 1, 2]]},
        {"labels": torch.tensor([2]), "boxes": boxes[1, [5]]},
    ]
    matcher = HungarianMatcher()
    reference = matcher(logits, boxes, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        costs = matcher.cost_matrices(logits.bfloat16(), boxes.bfloat16(), targets)
        indices = matcher(logits.bfloat16(), boxes.bfloat16(), targets)
    assert all(cost.dtype == torch.float32 for cost in costs)
    for (q, t), (q_ref, t_ref) in zip(indices, reference, strict=True):
        assert torch.equal(q, q_ref) and torch.equal(t, t_ref)


def good_inputs():
    return torch.zeros(1, 3, 2), torch.full((1, 3, 4), 0.5), [target([1], [[0.5, 0.5, 0.2, 0.2]])]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda lg, bx, tg: (lg.fill_(float("nan")), bx, tg), "pred_logits"),
        (
            lambda lg, bx, tg: (lg, bx.index_fill_(1, torch.tensor([0]), float("inf")), tg),
            "pred_boxes",
        ),
        (lambda lg, bx, tg: (lg, -bx, tg), "pred_boxes"),
        (lambda lg, bx, tg: (lg[..., 0], bx, tg), "pred_logits"),
        (lambda lg, bx, tg: (lg, bx[:, :2], tg), "pred_boxes"),
        (lambda lg, bx, tg: (lg, bx, tg * 2), "targets"),
        (lambda lg, bx, tg: (lg, bx, [target([2], [[0.5, 0.5, 0.2, 0.2]])]), "labels"),
        (lambda lg, bx, tg: (lg, bx, [target([-1], [[0.5, 0.5, 0.2, 0.2]])]), "labels"),
        (lambda lg, bx, tg: (lg, bx, [{**tg[0], "labels": torch.tensor([0.0])}]), "labels"),
        (lambda lg, bx, tg: (lg, bx, [{"labels": tg[0]["labels"]}]), "targets\\[0\\]"),
        (lambda lg, bx, tg: (lg, bx, [{**tg[0], "boxes": torch.ones(1, 3)}]), "boxes"),
        (lambda lg, bx, tg: (lg, bx, [target([0], [[0.5, float("nan"), 0.2, 0.2]])]), "boxes"),
        (lambda lg, bx, tg: (lg, bx, [target([0], [[0.5, 0.5, -0.2, 0.2]])]), "boxes"),
    ],
)
def test_bad_inputs_raise(mutate, match):
    logits, boxes, targets = mutate(*good_inputs())
    with pytest.raises(ValueError, match=match):
        HungarianMatcher()(logits, boxes, targets)


def test_bad_cost_weights_raise():
    with pytest.raises(ValueError, match="cost_bbox"):
        HungarianMatcher(cost_bbox=-1.0)
    with pytest.raises(ValueError, match="cost_giou"):
        HungarianMatcher(cost_giou=float("nan"))
    with pytest.raises(ValueError, match="zero"):
        HungarianMatcher(cost_class=0.0, cost_bbox=0.0, cost_giou=0.0)
