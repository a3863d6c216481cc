"""Sine position encodings against an element-by-element float64 computation."""

import math

import pytest
import torch

from detr_efficient.layers import PositionEmbeddingSine, sine_embed_coords


def _feature(value: float, i: int, num_feats: int, temperature: float) -> float:
    angle = value / temperature ** (2 * (i // 2) / num_feats)
    return math.sin(angle) if i % 2 == 0 else math.cos(angle)


@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_feature_map_encoding_matches_formula_with_padding(offset):
    num_feats, temperature = 6, 20.0
    mask = torch.zeros(2, 3, 5, dtype=torch.bool)
    mask[1, 2:, :] = True  # image 1: 2 valid rows, 3 valid columns
    mask[1, :, 3:] = True
    out = PositionEmbeddingSine(num_feats, temperature, offset=offset, eps=0.0)(mask)
    assert out.shape == (2, 2 * num_feats, 3, 5)
    for b, (rows, cols) in enumerate([(3, 5), (2, 3)]):
        for y in range(rows):
            for x in range(cols):
                ny = (y + 1 + offset) / rows * 2 * math.pi
                nx = (x + 1 + offset) / cols * 2 * math.pi
                expected = [_feature(ny, i, num_feats, temperature) for i in range(num_feats)]
                expected += [_feature(nx, i, num_feats, temperature) for i in range(num_feats)]
                torch.testing.assert_close(
                    out[b, :, y, x], torch.tensor(expected), atol=1e-5, rtol=1e-5
                )


def test_feature_map_encoding_rejects_non_bool_mask():
    with pytest.raises(ValueError, match="mask"):
        PositionEmbeddingSine()(torch.zeros(1, 2, 2))


@pytest.mark.parametrize("exchange_xy", [True, False])
def test_coordinate_embedding_order_and_values(exchange_xy):
    coords = torch.tensor([[0.1, 0.7, 0.3, 0.2]])
    num_feats = 4
    out = sine_embed_coords(coords, num_feats, temperature=10000.0, exchange_xy=exchange_xy)
    order = [1, 0, 2, 3] if exchange_xy else [0, 1, 2, 3]
    expected = [
        _feature(coords[0, c].item() * 2 * math.pi, i, num_feats, 10000.0)
        for c in order
        for i in range(num_feats)
    ]
    torch.testing.assert_close(out[0], torch.tensor(expected), atol=1e-6, rtol=1e-6)
