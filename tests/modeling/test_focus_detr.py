"""Focus-DETR: foreground label assignment on hand-made boxes, its loss, and the detector end
to end (losses, gradients, detections, kernels vs reference attention, official options)."""

import math
import sys
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.modeling.focus_detr import (
    OFFICIAL_SCALE_RANGES,
    PAPER_SCALE_RANGES,
    foreground_loss,
    foreground_targets,
)
from detr_efficient.modeling.losses import sigmoid_focal_loss

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch  # noqa: E402
from test_detectors import _model as shapes_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Level 0: 2x2 tokens of stride 8 (centres 4 and 12); level 1: one token of stride 16 (8, 8).
TWO_LEVELS = [(2, 2), (1, 1)]
STRIDES = (8, 16)
# The box [2, 2, 10, 14] holds the level-0 centres (4, 4) and (4, 12) with max(l,t,r,b) = 10
# each, and the level-1 centre (8, 8) with max(6, 6, 2, 6) = 6.
BOX = torch.tensor([[2.0, 2.0, 10.0, 14.0]])


@pytest.mark.parametrize(
    "ranges, expected",
    [
        (((-1, 10), (5, math.inf)), [1, 0, 1, 0, 1]),  # overlapping: foreground on both levels
        (((-1, 10), (10, math.inf)), [1, 0, 1, 0, 0]),  # disjoint: only the finer level
        (((-1, 9), (9, math.inf)), [0, 0, 0, 0, 0]),  # 10 > 9 on level 0, 6 <= 9 on level 1
        (((10, 20), (0, 6)), [0, 0, 0, 0, 1]),  # the low bound is exclusive, the high inclusive
    ],
)
def test_assignment_by_box_size_per_level(ranges, expected):
    targets = foreground_targets([BOX], TWO_LEVELS, STRIDES, ranges)
    assert targets.tolist() == [expected]


def test_a_centre_on_the_box_edge_is_not_inside():
    box = torch.tensor([[4.0, 0.0, 20.0, 20.0]])  # left edge through the centres x = 4
    targets = foreground_targets([box], [(2, 2)], (8,), ((-1, math.inf),))
    assert targets.tolist() == [[0, 1, 0, 1]]


def test_assignment_per_image_and_without_boxes():
    targets = foreground_targets(
        [BOX, torch.zeros(0, 4)], TWO_LEVELS, STRIDES, PAPER_SCALE_RANGES[:2]
    )
    assert targets.shape == (2, 5)
    assert targets[1].sum() == 0


def test_paper_ranges_overlap_by_half_an_interval_and_official_ranges_do_not():
    official, paper = OFFICIAL_SCALE_RANGES, PAPER_SCALE_RANGES
    for level in range(3):
        boundary = official[level][1]
        assert boundary == official[level + 1][0]  # official: disjoint, touching
        width = boundary - max(official[level][0], 0.0)
        overlap = (paper[level + 1][0], paper[level][1])  # paper: a band around the boundary
        assert overlap[1] - overlap[0] == 0.5 * width
        assert (overlap[0] + overlap[1]) / 2 == boundary
    assert paper[0][0] == official[0][0] and paper[-1][1] == official[-1][1]


@pytest.mark.parametrize(
    "ranges, match",
    [(((-1, 10),), "1 scale ranges for 2 levels"), (((-1, 10), (5, 5)), "low < high")],
)
def test_bad_scale_ranges_are_named(ranges, match):
    with pytest.raises(ValueError, match=match):
        foreground_targets([BOX], TWO_LEVELS, STRIDES, ranges)


def test_foreground_loss_is_focal_over_valid_tokens_per_positive():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.0, 1.0, -2.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True, False], [True, True, True, True]])
    focal = sigmoid_focal_loss(logits, targets)
    first = (focal[0, :3].sum() / 2).item()  # two valid positives
    second = (focal[1].sum() / 1).item()  # no positives: divided by 1
    expected = (first + second) / 2
    assert foreground_loss(logits, targets, valid).item() == pytest.approx(expected, rel=1e-6)


def _model(**overrides):
    return shapes_model("focus_detr", **overrides)


def test_training_losses_and_gradients():
    model = _model().train()
    losses = model(_batch())
    stages = ["", "_0", "_1", "_enc", "_dn", "_dn_0", "_dn_1"]
    expected = {f"loss_{kind}{stage}" for kind in ("class", "bbox", "giou") for stage in stages}
    assert set(losses) == expected | {"loss_foreground"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert model.selector.alpha.grad.abs().sum() > 0


def test_foreground_loss_uses_the_configured_ranges():
    paper = _model().train()
    official = _model(**{"model.scale_ranges": list(map(list, OFFICIAL_SCALE_RANGES))}).train()
    batch = _batch()
    token_map = paper.encode_sparse(batch)[1]
    a = paper.foreground_targets(token_map, batch)
    b = official.foreground_targets(token_map, batch)
    assert a.shape == b.shape and not torch.equal(a, b)


def test_detections_in_original_coordinates():
    model = _model(**{"model.num_detections": 7}).eval()
    with torch.no_grad():
        outputs = model(_batch())
    first = outputs[0]["instances"]
    assert first.image_size == (48, 64) and len(first) == 7
    boxes = first.pred_boxes.tensor
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 64).all()


def test_kernel_and_reference_attention_agree():
    paths = [
        "model.encoder.layer.layer.self_attn.use_reference",
        "model.decoder.layer.cross_attn.use_reference",
    ]
    kernel = _model().eval()
    reference = _model(**{p: True for p in paths}).eval()
    reference.load_state_dict(kernel.state_dict())
    with torch.no_grad():
        a, b = kernel(_batch()), reference(_batch())
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x["instances"].scores, y["instances"].scores, atol=1e-4, rtol=0)


def test_official_code_options_run_and_change_the_output():
    official = {"model.encoder.score_product": "logits", "model.encoder.value_source": "original"}
    paper, other = _model().eval(), _model(**official).eval()
    other.load_state_dict(paper.state_dict())
    with torch.no_grad():
        a, b = paper(_batch()), other(_batch())
    assert not torch.allclose(a[0]["instances"].scores, b[0]["instances"].scores)


def test_trains_under_bf16_autocast():
    model = _model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(_batch())
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_r50_config_has_dino_parameters_plus_the_selector():
    focus = instantiate(
        LazyConfig.load(str(REPO / "configs/focus_detr/models/focus_detr_r50.py")).model
    )
    count = sum(p.numel() for p in focus.parameters())
    assert 47.5e6 <= count <= 49.0e6  # paper: ~48M
    extra = sum(p.numel() for n, p in focus.named_parameters() if "selector" in n or "dual" in n)
    dino = sum(
        p.numel()
        for p in instantiate(
            LazyConfig.load(str(REPO / "configs/dino/models/dino_r50.py")).model
        ).parameters()
    )
    assert count == dino + extra
