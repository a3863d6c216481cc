"""The decoder's box refinement: the inverse-sigmoid clamp (``refine_eps``) by hand, and the
clamps the reference configs take from the official code."""

import sys
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch, _model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_refine_eps_clamps_the_refined_boxes(eps):
    """With box heads that predict no change, a layer's refined box is its reference with
    every coordinate clamped to [eps, 1 - eps]."""
    model = _model("dino").eval()
    model.decoder.refine_eps = eps
    with torch.no_grad():
        _, token_map, memory = model.encode(_batch())
        boxes = torch.tensor([[[0.5, 0.5, 0.9999, 0.0001]]], dtype=torch.float64)
        boxes = boxes.float().expand(2, 1, 4)
        content = torch.randn(2, 1, model.embed_dim)
        layers = len(model.decoder.layers)
        _, references = model.decoder(
            content, boxes, token_map, memory, [lambda x: x.new_zeros(*x.shape[:-1], 4)] * layers
        )
    expected = boxes.clamp(eps, 1 - eps)
    for refined in references[1:]:
        torch.testing.assert_close(refined, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("config", "refine", "box", "denoising"),
    [
        ("configs/dino/models/dino_r50.py", 1e-3, 1e-3, 1e-3),  # DINO's util.misc
        ("configs/focus_detr/models/focus_detr_r50.py", 1e-3, 1e-3, 1e-3),
        ("configs/lite_detr/models/lite_dino_r50.py", 1e-3, 1e-3, 1e-3),  # its own decoder
        ("configs/ddq/models/ddq_detr_r50.py", 1e-3, 1e-5, 1e-3),  # mmdetection's DDQ-DETR
        ("configs/dino/models/dino_shapes.py", 1e-5, 1e-5, 1e-5),
    ],
)
def test_reference_configs_clamp_as_their_official_code(config, refine, box, denoising):
    model = LazyConfig.load(str(REPO / config)).model
    assert model.decoder.get("refine_eps", 1e-5) == refine
    assert model.get("box_eps", 1e-5) == box
    assert model.denoising.get("eps", 1e-5) == denoising
