"""Lite DETR's interleaved encoder: the paper's variant names, which tokens each layer
updates (against the same layers run on every token), the split FFN, padding, gradients."""

import pytest
import torch
from torch import nn

from detr_efficient.layers import (
    DeformableEncoderLayer,
    KeyAwareDeformableAttention,
    MultiScaleDeformableAttention,
)
from detr_efficient.modeling.lite_detr import (
    InterleavedEncoder,
    SplitFFNEncoderLayer,
    interleaved_schedule,
    parse_variant,
)
from detr_efficient.modeling.multiscale import TokenMap, encoder_reference_points

C, HEADS = 16, 2
SHAPES = [(6, 7), (3, 4), (2, 2), (1, 1)]


@pytest.mark.parametrize(
    "name, high_levels, schedule",
    [
        # the official code's layer order for the released models
        ("H3L1-(2+1)x3", 3, ["high", "full"] * 3),
        ("H3L1-(6+1)x1", 3, ["high"] * 5 + ["full"]),
        ("H3L1-(3+1)x2", 3, ["high", "high", "full"] * 2),
        ("H2L2-(2+1)x3", 2, ["high", "full"] * 3),
        ("H3L1-(3+2)x1", 3, ["high", "full", "full"]),
    ],
)
def test_paper_variant_names(name, high_levels, schedule):
    spec = parse_variant(name)
    assert spec["num_high_levels"] == high_levels and spec["num_levels"] == 4
    assert interleaved_schedule(spec["num_blocks"], spec["high_updates"], spec["low_updates"]) == (
        schedule
    )


@pytest.mark.parametrize("name", ["H3L1", "H3L1-(2+1)", "L1H3-(2+1)x3", "H3L1-(2,1)x3"])
def test_malformed_variant_names_are_errors(name):
    with pytest.raises(ValueError, match="not of the form"):
        parse_variant(name)


@pytest.mark.parametrize("args", [(0, 2, 1), (3, 1, 2), (3, 2, 0)])
def test_impossible_schedules_are_errors(args):
    with pytest.raises(ValueError, match="InterleavedEncoder"):
        interleaved_schedule(*args)


def _attention(key_aware: bool, levels: int = 4) -> nn.Module:
    module = KeyAwareDeformableAttention if key_aware else MultiScaleDeformableAttention
    return module(C, HEADS, levels, num_points=2)


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (the usual init zeroes the sampling offsets)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    return module


def _token_map(batch: int = 2, pad_image_1: bool = True) -> TokenMap:
    generator = torch.Generator().manual_seed(1)
    total = sum(h * w for h, w in SHAPES)
    masks = []
    for h, w in SHAPES:
        mask = torch.zeros(batch, h, w, dtype=torch.bool)
        if pad_image_1 and w > 1:
            mask[1, :, (w + 1) // 2 + 1 :] = True
        masks.append(mask.flatten(1))
    padding = torch.cat(masks, 1)
    valid_w = torch.stack(
        [
            (~m.reshape(batch, h, w)[:, 0]).float().mean(1)
            for m, (h, w) in zip(masks, SHAPES, strict=True)
        ],
        1,
    )
    valid_ratios = torch.stack([valid_w, torch.ones_like(valid_w)], -1)
    spatial = torch.tensor(SHAPES, dtype=torch.int64)
    starts = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
    return TokenMap(
        tokens=torch.randn(batch, total, C, generator=generator),
        pos=torch.randn(batch, total, C, generator=generator),
        padding_mask=padding,
        spatial_shapes=spatial,
        level_start_index=starts,
        valid_ratios=valid_ratios,
        shapes=SHAPES,
    )


def _encoder(key_aware: bool, num_high_levels: int = 3, **schedule) -> InterleavedEncoder:
    high = DeformableEncoderLayer(_attention(key_aware), C, ffn_dim=24, dropout=0.0)
    full = SplitFFNEncoderLayer(_attention(key_aware), C, ffn_dim=24, low_ffn_dim=8, dropout=0.0)
    encoder = InterleavedEncoder(high, full, num_high_levels=num_high_levels, **schedule)
    return _randomise(encoder, seed=7).eval()


def _slow_encoder(encoder: InterleavedEncoder, token_map: TokenMap) -> torch.Tensor:
    """Every layer run with every token as a query; a high-level layer keeps its output for
    the high-level rows only, a full layer applies both FFNs to every row and keeps each
    FFN's rows."""
    reference = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
    split = sum(h * w for h, w in SHAPES[: len(SHAPES) - encoder.num_high_levels])
    common = (token_map.spatial_shapes, token_map.level_start_index, token_map.padding_mask)
    tokens = token_map.tokens
    for kind, layer in zip(encoder.schedule, encoder.layers, strict=True):
        if kind == "high":
            everyone = layer(tokens, token_map.pos, reference, *common, value=tokens)
            tokens = torch.cat([tokens[:, :split], everyone[:, split:]], 1)
        else:
            attended = layer.norm(
                layer.self_attn(
                    tokens,
                    query_pos=token_map.pos,
                    reference_points=reference,
                    spatial_shapes=common[0],
                    level_start_index=common[1],
                    key_padding_mask=common[2],
                )
            )
            low, high = layer.low_ffn(attended), layer.ffn(attended)
            tokens = torch.cat([low[:, :split], high[:, split:]], 1)
    return tokens


@pytest.mark.parametrize("key_aware", [False, True])
@pytest.mark.parametrize(
    "num_high_levels, schedule",
    [
        (3, dict(num_blocks=3, high_updates=2, low_updates=1)),
        (2, dict(num_blocks=1, high_updates=3, low_updates=1)),
    ],
)
def test_encoder_matches_every_layer_run_on_every_token(key_aware, num_high_levels, schedule):
    encoder = _encoder(key_aware, num_high_levels, **schedule)
    token_map = _token_map()
    with torch.no_grad():
        got = encoder(token_map)
        expected = _slow_encoder(encoder, token_map)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_high_level_layers_leave_the_low_level_tokens_alone():
    encoder = _encoder(key_aware=True, num_blocks=1, high_updates=4, low_updates=1)
    encoder.layers = encoder.layers[:3]  # high-level layers only
    encoder.schedule = encoder.schedule[:3]
    token_map = _token_map()
    with torch.no_grad():
        out = encoder(token_map)
    split = 6 * 7
    assert torch.equal(out[:, :split], token_map.tokens[:, :split])
    assert not torch.allclose(out[:, split:], token_map.tokens[:, split:])


def test_padded_tokens_do_not_change_valid_outputs():
    encoder = _encoder(key_aware=True)
    token_map = _token_map()
    changed = _token_map()
    noise = 100.0 * torch.randn_like(changed.tokens)
    changed.tokens = torch.where(changed.padding_mask[..., None], noise, changed.tokens)
    with torch.no_grad():
        a, b = encoder(token_map), encoder(changed)
    valid = ~token_map.padding_mask
    # padded tokens are queries too (as in the official code) but never keys or values
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=1e-5)


def test_split_ffn_layer_routes_each_token_to_its_ffn():
    layer = _randomise(
        SplitFFNEncoderLayer(_attention(False), C, ffn_dim=24, low_ffn_dim=8, dropout=0.0), 3
    )
    token_map = _token_map(pad_image_1=False)
    reference = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
    args = (
        token_map.tokens,
        token_map.pos,
        reference,
        token_map.spatial_shapes,
        token_map.level_start_index,
        None,
    )
    out = layer(*args, num_low_tokens=5)
    attended = layer.norm(
        layer.self_attn(
            *args[:1],
            query_pos=args[1],
            reference_points=args[2],
            spatial_shapes=args[3],
            level_start_index=args[4],
        )
    )
    torch.testing.assert_close(out[:, :5], layer.low_ffn(attended[:, :5]))
    torch.testing.assert_close(out[:, 5:], layer.ffn(attended[:, 5:]))
    assert layer.low_ffn.linear1.out_features == 8 and layer.ffn.linear1.out_features == 24


def test_every_parameter_gets_a_gradient():
    encoder = _encoder(key_aware=True).train()
    token_map = _token_map()
    token_map.tokens.requires_grad_(True)
    encoder(token_map).square().mean().backward()
    missing = [n for n, p in encoder.named_parameters() if p.grad is None]
    assert missing == []
    assert token_map.tokens.grad.abs().sum() > 0


def test_no_low_level_map_left_is_an_error():
    encoder = _encoder(key_aware=False, num_high_levels=4)
    with pytest.raises(ValueError, match="no low-level map"):
        encoder(_token_map())


def test_updated_tokens_count_the_valid_queries_of_each_layer():
    encoder = _encoder(key_aware=False, num_blocks=1, high_updates=3, low_updates=1)
    token_map = _token_map()
    # image 1 is padded on the right: valid columns 5/7, 3/4, 2/2, 1/1 per level
    full, high = [42 + 12 + 4 + 1, 30 + 9 + 4 + 1], [12 + 4 + 1, 9 + 4 + 1]
    assert encoder.updated_tokens(token_map) == [high, high, full]
