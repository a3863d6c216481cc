"""DDQ-DETR: distinct-query selection and suppression against torchvision's NMS, the attention
mask, the one-to-many assignment and quality focal targets by hand, and the detector."""

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from detectron2.config import LazyConfig, instantiate

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy
from detr_efficient.modeling.ddq import (
    DenseQueryLoss,
    distinct_attn_mask,
    quality_focal_loss,
    select_distinct,
    suppress_duplicates,
    top_k_assign,
)
from detr_efficient.modeling.ddq import ddq_detr as ddq_module
from detr_efficient.modeling.matcher import HungarianMatcher

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _clustered_boxes(generator, batch, n):
    """cxcywh boxes in a few tight clusters, so that NMS at 0.8 suppresses many."""
    centres = torch.rand(batch, 4, 2, generator=generator) * 0.6 + 0.2
    which = torch.randint(0, 4, (batch, n), generator=generator)
    picked = torch.stack([centres[b, which[b]] for b in range(batch)])
    jitter = 0.004 * torch.randn(batch, n, 2, generator=generator)
    size = 0.2 + 0.01 * torch.rand(batch, n, 2, generator=generator)
    return torch.cat([picked + jitter, size], -1)


def test_select_distinct_is_torchvision_nms_then_the_best_k():
    generator = torch.Generator().manual_seed(0)
    boxes = _clustered_boxes(generator, 3, 40)
    scores = torch.rand(3, 40, generator=generator)
    valid = torch.rand(3, 40, generator=generator) > 0.2
    index = select_distinct(boxes, scores, valid, 0.8, k=6)
    assert index.shape == (3, 6)
    for b in range(3):
        rows = valid[b].nonzero()[:, 0]
        kept = rows[torchvision.ops.nms(box_cxcywh_to_xyxy(boxes[b, rows]), scores[b, rows], 0.8)]
        expected = kept[:6].tolist() + [-1] * (6 - min(6, len(kept)))
        assert index[b].tolist() == expected


def test_suppress_duplicates_runs_nms_among_the_distinct_queries_only():
    # query 0 survives and suppresses query 1; query 2 was already suppressed; query 3 is
    # far away. The public implementations read the distinct set from row 0 of the mask and
    # would call all four distinct here.
    boxes = torch.tensor(
        [
            [
                [0.3, 0.3, 0.2, 0.2],
                [0.301, 0.3, 0.2, 0.2],
                [0.3, 0.302, 0.2, 0.2],
                [0.7, 0.7, 0.1, 0.1],
            ]
        ]
    )
    scores = torch.tensor([[0.9, 0.8, 0.95, 0.1]])
    distinct = torch.tensor([[True, True, False, True]])
    still = suppress_duplicates(boxes, scores, distinct, 0.8)
    assert still.tolist() == [[True, False, False, True]]


def test_distinct_attn_mask_by_hand():
    distinct = torch.tensor([[True, False, False], [False, False, False]])
    mask = distinct_attn_mask(distinct)
    blocked = [[False, False, False], [False, True, True], [False, True, True]]
    assert mask[0].tolist() == blocked
    # no distinct query: each query may at least attend to itself (no fully masked row)
    assert mask[1].tolist() == [[False, True, True], [True, False, True], [True, True, False]]


def test_top_k_assign_repeats_each_target_and_is_optimal():
    generator = torch.Generator().manual_seed(1)
    cost = torch.rand(5, 2, generator=generator)
    query, target = top_k_assign(cost, top_k=4)  # k = min(4, 5 // 2) = 2
    assert sorted(target.tolist()) == [0, 0, 1, 1]
    assert len(set(query.tolist())) == 4
    best = min(
        sum(cost[q, t] for q, t in zip(rows, (0, 0, 1, 1), strict=True))
        for rows in itertools.permutations(range(5), 4)
    )
    assert float(cost[query, target].sum()) == pytest.approx(float(best))
    empty = top_k_assign(torch.zeros(5, 0), 4)
    assert empty[0].numel() == 0 and empty[1].numel() == 0


def test_quality_focal_loss_by_hand():
    logits = torch.tensor([0.0, 0.0, 2.0])
    target = torch.tensor([0.5, 1.0, 0.0])
    p = 1 / (1 + math.exp(-2.0))
    expected = [0.0, math.log(2) * 0.25, -math.log(1 - p) * p**2]
    assert quality_focal_loss(logits, target, 2.0).tolist() == pytest.approx(expected)


def test_dense_loss_soft_targets_by_hand():
    """One target, two queries (k = min(4, 2 // 1) = 2 assigns both): soft targets are the
    alignments p * IoU^6 scaled so the best one equals the best IoU."""
    target = {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}
    boxes = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.55, 0.5, 0.4, 0.4]]])
    logits = torch.full((1, 2, 3), -2.0)
    logits[0, :, 1] = torch.tensor([0.0, 1.0])
    loss = DenseQueryLoss(HungarianMatcher(), top_k=4)
    class_target, ((query, index, soft),) = loss.soft_targets(
        logits, boxes, [target], torch.ones(1, 2, dtype=torch.bool)
    )
    iou2 = (0.35 * 0.4) / (2 * 0.16 - 0.35 * 0.4)
    align = torch.tensor([0.5 * 1.0, torch.sigmoid(torch.tensor(1.0)).item() * iou2**6])
    expected = align / align.max() * 1.0  # the best IoU is 1 (query 0)
    order = query.argsort()
    assert query[order].tolist() == [0, 1] and index.tolist() == [0, 0]
    assert soft[order].tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert class_target[0, :, 1].tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    assert class_target[0, :, [0, 2]].abs().sum() == 0
    # a masked-out query is neither assigned nor classified
    masked = loss(logits, boxes, [target], torch.tensor([[True, False]]))
    _, ((query, _, soft),) = loss.soft_targets(
        logits, boxes, [target], torch.tensor([[True, False]])
    )
    assert query.tolist() == [0] and soft.tolist() == pytest.approx([1.0])
    qfl = quality_focal_loss(logits[0, 0], torch.tensor([0.0, 1.0, 0.0]), 2.0).sum()
    assert float(masked["loss_class"]) == pytest.approx(float(qfl) / 1.0, rel=1e-5)


def _model(**overrides):
    cfg = LazyConfig.load(str(REPO / "configs/ddq/models/ddq_detr_shapes.py"))
    cfg = LazyConfig.apply_overrides(cfg, [f"{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    return instantiate(cfg.model)


def test_training_losses_are_finite_and_every_parameter_gets_a_gradient():
    model = _model().train()
    losses = model(_batch())
    stages = ["", "_0", "_1"]
    one_to_one = {f"loss_{k}{s}" for k in ("class", "bbox", "giou") for s in [*stages, "_enc"]}
    dn = {f"loss_{k}_dn{s}" for k in ("class", "bbox", "giou") for s in ["", "_0", "_1"]}
    dense = {f"loss_dense_{k}{s}" for k in ("class", "giou") for s in [*stages, "_enc"]}
    assert set(losses) == one_to_one | dn | dense
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert not hasattr(model, "query_content")


def test_distinct_sets_shrink_through_the_decoder_and_gate_the_detections(monkeypatch):
    calls = []

    def recording(boxes, scores, distinct, iou):
        still = suppress_duplicates(boxes, scores, distinct, iou)
        calls.append((distinct.clone(), still.clone()))
        return still

    monkeypatch.setattr(ddq_module, "suppress_duplicates", recording)
    model = _model(**{"model.decoder_distinct_iou": 0.3, "model.num_detections": 500}).eval()
    with torch.no_grad():  # boxes that move (the box head starts at zero), so some overlap
        torch.nn.init.normal_(model.box_head.layers[-1].weight, std=0.5)
        outputs = model(_batch())
    assert len(calls) == 2  # after decoder layers 0 and 1 of 3
    for before, after in calls:
        assert not (after & ~before).any()  # a suppressed query never comes back
    assert (calls[-1][1].sum(1) < calls[0][0].sum(1)).all()  # IoU 0.3 suppresses some
    # detections come from the distinct queries only: the others score exactly 0
    final = calls[-1][1]
    for output, distinct in zip(outputs, final, strict=True):
        scores = output["instances"].scores
        assert int((scores > 0).sum()) == int(distinct.sum()) * model.num_classes


def test_distinct_queries_are_ranked_in_fp32_under_bf16_autocast(monkeypatch):
    # bf16 sigmoid rounds every logit above ~7 to 1.0: NMS would then rank by token index.
    seen = []

    def recording(boxes, scores, valid, iou, k):
        seen.append((boxes.dtype, scores.dtype))
        return select_distinct(boxes, scores, valid, iou, k)

    monkeypatch.setattr(ddq_module, "select_distinct", recording)
    model = _model().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(_batch())
    assert seen == [(torch.float32, torch.float32)]


def test_bad_dense_ratio_is_an_error():
    with pytest.raises(ValueError, match="dense_ratio"):
        _model(**{"model.dense_ratio": 0.0})
