"""Focus-DETR vs DINO at the papers' protocol (R50, 3x850x1040, fvcore): the encoder and the
whole model must shrink as the paper reports (-45% GFLOPs): encoder <= 0.40 x DINO's,
total <= 0.65 x DINO's. Slow: two R50 traces at full size."""

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.evaluation.model_analysis import analyze_flops, dummy_inputs

REPO = Path(__file__).resolve().parents[2]


def _flops(path: str) -> tuple[int, int]:
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(str(REPO / path)).model).eval()
    report = analyze_flops(model, (dummy_inputs(),))
    return report.total, report.by_module["encoder"]


@pytest.mark.slow
def test_focus_detr_cuts_dino_gflops_like_the_paper():
    dino_total, dino_encoder = _flops("configs/dino/models/dino_r50.py")
    focus_total, focus_encoder = _flops("configs/focus_detr/models/focus_detr_r50.py")
    assert 0.9 * 235e9 <= dino_total <= 1.1 * 235e9  # Lite DETR's table: 235 (encoder 137)
    assert focus_encoder <= 0.40 * dino_encoder
    assert focus_total <= 0.65 * dino_total
