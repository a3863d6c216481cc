"""Sparse DETR: the decoder attention map against the gradient of the reference deformable
attention, its targets, and the detector end to end."""

import sys
from pathlib import Path

import pytest
import torch

from detr_efficient.modeling.sparse_detr import dam_targets, decoder_attention_map
from detr_efficient.ops.reference import ms_deform_attn_reference

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch  # noqa: E402
from test_detectors import _model as shapes_model  # noqa: E402

SHAPES = [(5, 7), (3, 2)]


def test_dam_equals_the_value_gradient_of_deformable_attention():
    """sum(out) is linear in the value with coefficients Σ weight × bilinear coefficient, so
    its gradient with respect to a one-channel value is exactly the attention map."""
    g = torch.Generator().manual_seed(0)
    batch, queries, heads, points = 2, 6, 3, 4
    tokens = sum(h * w for h, w in SHAPES)
    layers = []
    for _ in range(2):
        locations = (
            torch.rand(batch, queries, heads, len(SHAPES), points, 2, generator=g) * 1.4 - 0.2
        )
        weights = torch.rand(batch, queries, heads, len(SHAPES), points, generator=g)
        layers.append((locations.double(), weights.double()))
    dam = decoder_attention_map(layers, SHAPES, tokens)

    value = torch.ones(batch, tokens, heads, 1, dtype=torch.float64, requires_grad=True)
    shapes = torch.tensor(SHAPES)
    starts = torch.tensor([0, SHAPES[0][0] * SHAPES[0][1]])
    total = sum(ms_deform_attn_reference(value, shapes, starts, loc, w).sum() for loc, w in layers)
    (grad,) = torch.autograd.grad(total, value)
    torch.testing.assert_close(dam.double(), grad.sum((2, 3)), atol=1e-6, rtol=1e-6)


def test_dam_of_a_point_on_a_token_centre_is_that_token():
    # level (2, 4): the centre of token (row 1, col 2) is x = 2.5 / 4, y = 1.5 / 2
    locations = torch.tensor([2.5 / 4, 1.5 / 2]).view(1, 1, 1, 1, 1, 2)
    dam = decoder_attention_map([(locations, torch.full((1, 1, 1, 1, 1), 0.7))], [(2, 4)], 8)
    assert dam.tolist() == [[0, 0, 0, 0, 0, 0, pytest.approx(0.7), 0]]


def test_dam_targets_take_each_images_top_tokens():
    dam = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.0], [0.8, 0.2, 0.6, 0.9, 0.7]])
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    targets = dam_targets(dam, valid, 0.4)  # floor(0.4 n) + 1: 3 and 2 tokens
    assert targets.tolist() == [[0, 1, 1, 1, 0], [1, 0, 1, 0, 0]]


def _model(**overrides):
    return shapes_model("sparse_detr", **overrides)


def test_training_losses_and_gradients():
    model = _model().train()
    losses = model(_batch())
    assert "loss_dam" in losses and "loss_foreground" not in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(layer.cross_attn.recorded_sampling is None for layer in model.decoder.layers)


def test_eval_does_not_record_and_gives_detections():
    model = _model().eval()
    with torch.no_grad():
        outputs = model(_batch())
    assert len(outputs) == 2 and len(outputs[0]["instances"]) > 0
    assert all(not layer.cross_attn.record_sampling for layer in model.decoder.layers)


def test_every_encoder_layer_keeps_the_same_ratio():
    model = _model().eval()
    with torch.no_grad():
        _, token_map, _, encoding = model.encode_sparse(_batch())
    n = (~token_map.padding_mask).sum(1)
    expected = torch.minimum(torch.floor(n * 0.4).long() + 1, n)
    assert all(c.tolist() == expected.tolist() for c in encoding.counts)
