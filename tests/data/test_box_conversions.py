"""Box format conversions, checked on hand-computed values."""

from __future__ import annotations

import torch
from detectron2.structures import Boxes

from detr_efficient.data import (
    box_cxcywh_normalized_to_xyxy,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_cxcywh_normalized,
)

XYXY = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 200.0, 100.0]])


def test_xyxy_cxcywh_by_hand():
    expected = torch.tensor([[30.0, 40.0, 40.0, 40.0], [100.0, 50.0, 200.0, 100.0]])
    assert torch.equal(box_xyxy_to_cxcywh(XYXY), expected)
    assert torch.equal(box_cxcywh_to_xyxy(expected), XYXY)


def test_normalized_by_hand():
    # image (H, W) = (100, 200): x and w are divided by 200, y and h by 100
    expected = torch.tensor([[0.15, 0.4, 0.2, 0.4], [0.5, 0.5, 1.0, 1.0]])
    out = box_xyxy_to_cxcywh_normalized(Boxes(XYXY), (100, 200))
    assert torch.allclose(out, expected)
    assert torch.allclose(box_cxcywh_normalized_to_xyxy(out, (100, 200)), XYXY)


def test_empty_and_batched_shapes_and_dtype():
    empty = box_xyxy_to_cxcywh_normalized(torch.zeros(0, 4, dtype=torch.float64), (10, 10))
    assert empty.shape == (0, 4) and empty.dtype == torch.float64
    batched = box_xyxy_to_cxcywh(XYXY.expand(3, 2, 4))
    assert batched.shape == (3, 2, 4)
