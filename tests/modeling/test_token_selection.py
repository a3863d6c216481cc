"""Foreground selector and selective-token encoder: modulation, per-image kept counts with
padding, and the batched gather/update/scatter against a slow per-image reference."""

import copy

import pytest
import torch

from detr_efficient.layers import DeformableEncoderLayer, MultiScaleDeformableAttention
from detr_efficient.modeling.multiscale import encoder_reference_points, flatten_levels
from detr_efficient.modeling.token_selection import (
    DualAttention,
    ForegroundScorer,
    ForegroundTokenSelector,
    SelectiveEncoderLayer,
    SelectiveTokenEncoder,
    keep_counts,
)

C = 32
SHAPES = [(6, 8), (3, 4), (1, 1)]


def _token_map(valid_sizes=((6, 8), (4, 5)), seed=0):
    """Two images over 3 levels; the second is padded (its valid region is smaller)."""
    g = torch.Generator().manual_seed(seed)
    features, masks, positions = [], [], []
    for height, width in SHAPES:
        features.append(torch.randn(2, C, height, width, generator=g))
        positions.append(torch.randn(2, C, height, width, generator=g))
        mask = torch.zeros(2, height, width, dtype=torch.bool)
        for b, (vh, vw) in enumerate(valid_sizes):
            rows = max(1, round(vh * height / SHAPES[0][0]))
            cols = max(1, round(vw * width / SHAPES[0][1]))
            mask[b, rows:] = True
            mask[b, :, cols:] = True
        masks.append(mask)
    return flatten_levels(features, masks, positions, torch.randn(len(SHAPES), C, generator=g))


def test_keep_counts_round_like_the_official_code():
    counts = keep_counts(torch.tensor([0, 1, 9, 10, 100]), 0.3)
    assert counts.tolist() == [0, 1, 3, 4, 31]  # floor(0.3 n) + 1, capped at n


def test_scorer_global_half_ignores_padding_tokens():
    torch.manual_seed(0)
    scorer = ForegroundScorer(C)
    x = torch.randn(1, 10, C)
    valid = torch.tensor([[True] * 6 + [False] * 4])
    changed = x.clone()
    changed[:, 6:] = 100.0
    torch.testing.assert_close(scorer(x, valid)[:, :6], scorer(changed, valid)[:, :6])
    # and the global half is the mean over valid tokens only: equal to scoring them alone
    torch.testing.assert_close(scorer(x, valid)[:, :6], scorer(x[:, :6], valid[:, :6]))


def test_top_down_modulation_matches_the_formula_on_a_one_token_coarse_level():
    """With a 1x1 coarsest level, up(S) is that one score everywhere, so the finer level is
    scored on T (1 + alpha * S)."""
    torch.manual_seed(0)
    selector = ForegroundTokenSelector(C, num_levels=3, top_down=True)
    with torch.no_grad():
        selector.alpha.copy_(torch.tensor([0.0, 0.7]))
    token_map = _token_map(valid_sizes=((6, 8), (6, 8)))
    x = torch.randn(2, token_map.tokens.shape[1], C)
    scores = selector(x, token_map)
    assert scores.shape == (2, 48 + 12 + 1)
    coarse = selector.scorer(x[:, 60:], torch.ones(2, 1, dtype=torch.bool))
    torch.testing.assert_close(scores[:, 60:], coarse)
    middle = x[:, 48:60] * (1 + 0.7 * coarse[:, :, None])
    expected = selector.scorer(middle, torch.ones(2, 12, dtype=torch.bool))
    torch.testing.assert_close(scores[:, 48:60], expected)


def test_top_down_only_flows_from_coarse_to_fine_and_alpha_learns():
    torch.manual_seed(0)
    selector = ForegroundTokenSelector(C, num_levels=3, top_down=True)
    token_map = _token_map()
    x = torch.randn(2, token_map.tokens.shape[1], C, requires_grad=True)
    scores = selector(x, token_map)
    scores[:, :48].sum().backward()  # finest level only
    assert selector.alpha.grad is not None and (selector.alpha.grad != 0).all()
    assert x.grad[:, 48:].abs().sum() > 0  # the coarser levels modulate the finest
    x.grad = None
    scores = selector(x, token_map)
    scores[:, 60:].sum().backward()  # coarsest level: nothing finer feeds it
    assert x.grad[:, :60].abs().sum() == 0


def test_selector_rejects_a_level_count_mismatch():
    selector = ForegroundTokenSelector(C, num_levels=4)
    token_map = _token_map()
    with pytest.raises(ValueError, match="4 levels"):
        selector(torch.randn(2, token_map.tokens.shape[1], C), token_map)


def _encoder(keep_ratios, dual=True, **kwargs):
    torch.manual_seed(0)
    attention = MultiScaleDeformableAttention(C, num_heads=4, num_levels=3, num_points=2)
    layer = SelectiveEncoderLayer(
        DeformableEncoderLayer(attention, C, ffn_dim=64, dropout=0.0),
        DualAttention(C, num_heads=4, top_k=5) if dual else None,
    )
    encoder = SelectiveTokenEncoder(layer, keep_ratios, **kwargs)
    for p in encoder.parameters():  # the deformable attention starts with zero weights
        torch.nn.init.normal_(p, std=0.2)
    return encoder.eval()


def _class_head():
    torch.manual_seed(1)
    return torch.nn.Linear(C, 3)


def test_kept_tokens_per_image_follow_the_valid_counts_and_the_ranking():
    token_map = _token_map()
    valid = ~token_map.padding_mask
    scores = torch.randn(valid.shape, generator=torch.Generator().manual_seed(3))
    encoder = _encoder([0.5, 0.2])
    with torch.no_grad():
        encoding = encoder(token_map, scores, _class_head())
    n = valid.sum(1)
    assert n[0] > n[1]  # the second image is padded
    for layer, ratio in enumerate([0.5, 0.2]):
        expected = torch.minimum(torch.floor(n * ratio).long() + 1, n)
        assert encoding.counts[layer].tolist() == expected.tolist()
        index = encoding.kept[layer]
        assert index.shape[1] == int(expected.max())
        for b in range(2):
            k = int(expected[b])
            chosen = index[b, :k]
            assert (index[b, k:] == -1).all()
            assert valid[b, chosen].all()  # padding is never selected
            best = scores[b].masked_fill(~valid[b], -torch.inf).topk(k).indices
            assert chosen.tolist() == best.tolist()


def _reference_encoding(encoder, token_map, scores, class_head):
    """Each image alone, one Python step per layer: top-k by score, the layer on exactly
    those tokens, written back by index."""
    reference_points = encoder_reference_points(token_map.shapes, token_map.valid_ratios)
    outputs = []
    for b in range(token_map.tokens.shape[0]):
        valid = ~token_map.padding_mask[b]
        tokens = token_map.tokens[b : b + 1].clone()
        original = tokens.clone()
        ranked = scores[b].masked_fill(~valid, -torch.inf)
        for layer, ratio in zip(encoder.layers, encoder.keep_ratios, strict=True):
            n = int(valid.sum())
            k = min(n, int(n * ratio) + 1)
            index = ranked.topk(k).indices
            query = tokens[:, index]
            pos = token_map.pos[b : b + 1, index]
            if layer.dual_attention is not None:
                fg = scores[b, index]
                cls = class_head(query[0]).amax(-1)
                logits = encoder.score_product == "logits"
                mc = fg * cls if logits else fg.sigmoid() * cls.sigmoid()
                top = mc.topk(min(k, layer.dual_attention.top_k)).indices
                dual = layer.dual_attention
                sel, sel_pos = query[:, top], pos[:, top]
                attended = dual.attn(sel + sel_pos, sel + sel_pos, sel, need_weights=False)[0]
                query = query.clone()
                query[:, top] = dual.norm(sel + attended)
            value = original if encoder.value_source == "original" else tokens
            updated = layer.layer(
                query,
                pos,
                reference_points[b : b + 1, index],
                token_map.spatial_shapes,
                token_map.level_start_index,
                token_map.padding_mask[b : b + 1],
                value=value,
            )
            tokens = tokens.clone()
            tokens[:, index] = updated
        outputs.append(tokens)
    return torch.cat(outputs)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"score_product": "logits", "value_source": "original"},
    ],
)
@pytest.mark.parametrize("dual", [True, False])
def test_batched_encoder_matches_the_per_image_reference(options, dual):
    token_map = _token_map()
    scores = torch.randn(token_map.padding_mask.shape, generator=torch.Generator().manual_seed(5))
    encoder = _encoder([1.0, 0.5, 0.2], dual=dual, **options)
    head = _class_head()
    with torch.no_grad():
        memory = encoder(token_map, scores, head).memory
        expected = _reference_encoding(encoder, token_map, scores, head)
    torch.testing.assert_close(memory, expected, atol=1e-5, rtol=1e-5)
    # untouched tokens keep their input values exactly
    never = torch.ones_like(token_map.padding_mask)
    for b in range(2):
        never[b, encoder(token_map, scores, head).kept[0][b].clamp(min=0)] = False
    assert torch.equal(memory[never], token_map.tokens[never])


def test_options_change_the_result():
    token_map = _token_map()
    scores = torch.randn(token_map.padding_mask.shape, generator=torch.Generator().manual_seed(5))
    head = _class_head()
    with torch.no_grad():
        paper = _encoder([1.0, 0.5]).forward(token_map, scores, head).memory
        values = _encoder([1.0, 0.5], value_source="original")(token_map, scores, head).memory
    assert not torch.allclose(paper, values)


def test_encoder_gradients_reach_tokens_and_parameters():
    token_map = _token_map()
    token_map.tokens.requires_grad_(True)
    scores = torch.randn(token_map.padding_mask.shape)
    encoder = _encoder([0.6, 0.3]).train()
    encoder(token_map, scores, _class_head()).memory.sum().backward()
    assert token_map.tokens.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"keep_ratios": []}, "one ratio per layer"),
        ({"keep_ratios": [0.0]}, r"\(0, 1\]"),
        ({"keep_ratios": [0.5], "score_product": "sum"}, "score_product"),
        ({"keep_ratios": [0.5], "value_source": "new"}, "value_source"),
    ],
)
def test_bad_encoder_options_are_named(kwargs, match):
    layer = SelectiveEncoderLayer(
        DeformableEncoderLayer(MultiScaleDeformableAttention(C, 4, 3, 2), C, 64, 0.0)
    )
    with pytest.raises(ValueError, match=match):
        SelectiveTokenEncoder(copy.deepcopy(layer), **kwargs)


def test_dual_attention_without_a_class_head_is_an_error():
    token_map = _token_map()
    with pytest.raises(ValueError, match="class_head"):
        _encoder([0.5])(token_map, torch.randn(token_map.padding_mask.shape))
