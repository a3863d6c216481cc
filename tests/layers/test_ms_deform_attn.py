"""MultiScaleDeformableAttention: the standard init and a hand-set case checked against
``F.grid_sample``."""

import math

import pytest
import torch
import torch.nn.functional as F
from deform_helpers import PATHS, make_inputs, randomize
from torch.testing import assert_close

from detr_efficient.layers import MultiScaleDeformableAttention


def xavier_bound(linear: torch.nn.Linear) -> float:
    return math.sqrt(6.0 / (linear.in_features + linear.out_features))


def test_standard_init():
    module = MultiScaleDeformableAttention()  # 256 channels, 8 heads, 4 levels, 4 points
    assert module.sampling_offsets.out_features == 8 * 4 * 4 * 2
    assert module.attention_weights.out_features == 8 * 4 * 4
    assert torch.count_nonzero(module.sampling_offsets.weight) == 0
    assert torch.count_nonzero(module.attention_weights.weight) == 0
    assert torch.count_nonzero(module.attention_weights.bias) == 0

    bias = module.sampling_offsets.bias.view(8, 4, 4, 2)  # [H, L, P, (x, y)]
    hand = {
        (0, 0, 0): (1.0, 0.0),  # head 0: angle 0, point p at (p + 1, 0)
        (0, 3, 2): (3.0, 0.0),
        (1, 2, 1): (2.0, 2.0),  # 45°: (cos, sin) / max|.| = (1, 1)
        (2, 1, 3): (0.0, 4.0),  # 90°
        (3, 0, 0): (-1.0, 1.0),  # 135°
        (4, 1, 1): (-2.0, 0.0),  # 180°
        (5, 3, 3): (-4.0, -4.0),  # 225°
        (6, 2, 0): (0.0, -1.0),  # 270°
        (7, 0, 2): (3.0, -3.0),  # 315°
    }
    for (head, level, point), xy in hand.items():
        assert_close(bias[head, level, point], torch.tensor(xy), atol=1e-6, rtol=0)
    # every level starts from the same pattern
    assert torch.equal(bias, bias[:, :1].expand_as(bias))

    for linear in (module.value_proj, module.output_proj):
        bound = xavier_bound(linear)
        assert torch.count_nonzero(linear.bias) == 0
        assert linear.weight.abs().max() <= bound
        assert abs(linear.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound


def test_value_proj_ratio_sets_the_value_width():
    module = MultiScaleDeformableAttention(embed_dim=32, num_heads=4, value_proj_ratio=0.5)
    assert module.value_proj.out_features == 16
    assert module.output_proj.in_features == 16
    assert module.output_proj.out_features == 32


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize("ref_dim", [2, 4])
def test_zero_offsets_and_uniform_weights_average_the_reference_point(ref_dim, use_reference):
    shapes = [(5, 6), (3, 3), (2, 1)]
    module = MultiScaleDeformableAttention(
        embed_dim=8, num_heads=2, num_levels=3, num_points=3, use_reference=use_reference
    )
    randomize(module, seed=1)
    with torch.no_grad():  # all points at the reference point, equal weights
        for linear in (module.sampling_offsets, module.attention_weights):
            linear.weight.zero_()
            linear.bias.zero_()
    inputs = make_inputs(8, shapes, batch=2, queries=4, ref_dim=ref_dim, seed=2)
    with torch.no_grad():
        out = module(**inputs)

        value = module.value_proj(inputs["value"])
        value = value.masked_fill(inputs["key_padding_mask"][..., None], 0.0)
        centres = inputs["reference_points"][..., :2]  # boxes sample their centre
        samples, start = [], 0
        for level, (height, width) in enumerate(shapes):
            level_map = value[:, start : start + height * width].transpose(1, 2)
            level_map = level_map.reshape(2, 8, height, width)
            grid = 2 * centres[:, :, level, None, :] - 1  # [B, Q, 1, 2]
            sampled = F.grid_sample(level_map, grid, mode="bilinear", align_corners=False)
            samples.append(sampled[..., 0].transpose(1, 2))  # [B, Q, C]
            start += height * width
        mean = torch.stack(samples).mean(dim=0)
        expected = inputs["query"] + module.output_proj(mean)
    assert_close(out, expected, atol=1e-5, rtol=1e-5)
