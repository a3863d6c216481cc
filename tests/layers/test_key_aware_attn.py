"""KeyAwareDeformableAttention: its parameters and init, keys shared with values by default,
and uniform weights when every sampled key is the same."""

import math

import pytest
import torch
import torch.nn.functional as F
from deform_helpers import PATHS, make_inputs, randomize
from torch.testing import assert_close

from detr_efficient.layers import KeyAwareDeformableAttention, MultiScaleDeformableAttention
from detr_efficient.layers import key_aware_attn as key_aware_module
from detr_efficient.ops.reference import key_aware_deform_attn_reference


@pytest.mark.parametrize("proj_key", [False, True])
def test_parameters_and_init(proj_key):
    module = KeyAwareDeformableAttention(proj_key=proj_key)
    names = {name.split(".")[0] for name, _ in module.named_parameters()}
    expected = {"sampling_offsets", "query_proj", "value_proj", "output_proj"}
    assert names == expected | ({"key_proj"} if proj_key else set())
    assert not hasattr(module, "attention_weights")

    deformable = MultiScaleDeformableAttention()
    assert torch.count_nonzero(module.sampling_offsets.weight) == 0
    assert torch.equal(module.sampling_offsets.bias, deformable.sampling_offsets.bias)
    linears = [module.query_proj, module.value_proj, module.output_proj]
    if proj_key:
        linears.append(module.key_proj)
    for linear in linears:
        assert linear.weight.shape == (256, 256)
        assert torch.count_nonzero(linear.bias) == 0
        assert linear.weight.abs().max() <= math.sqrt(6.0 / 512)


def test_default_passes_the_projected_value_as_the_key(monkeypatch):
    calls = []

    def spy(query, key, value, *rest):
        calls.append((key is value, query.shape, key.shape))
        return key_aware_deform_attn_reference(query, key, value, *rest)

    monkeypatch.setattr(key_aware_module, "resolve_op", lambda name, use_reference: spy)
    shapes = [(4, 4), (2, 3)]
    for proj_key in (False, True):
        module = KeyAwareDeformableAttention(
            embed_dim=8, num_heads=2, num_levels=2, num_points=2, proj_key=proj_key
        )
        module(**make_inputs(8, shapes, batch=2, queries=3))
    assert calls == [(True, (2, 3, 2, 4), (2, 22, 2, 4)), (False, (2, 3, 2, 4), (2, 22, 2, 4))]


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize("ref_dim", [2, 4])
def test_identical_keys_at_every_point_give_uniform_weights(ref_dim, use_reference):
    shapes = [(5, 6), (3, 3)]
    module = KeyAwareDeformableAttention(
        embed_dim=8,
        num_heads=2,
        num_levels=2,
        num_points=3,
        proj_key=True,
        use_reference=use_reference,
    )
    randomize(module, seed=3)  # queries score keys very differently...
    with torch.no_grad():
        module.key_proj.weight.zero_()  # ...but every key is the bias
        module.key_proj.bias.mul_(10.0)
        module.sampling_offsets.weight.zero_()  # all points at the reference point
        module.sampling_offsets.bias.zero_()
    inputs = make_inputs(8, shapes, batch=2, queries=4, ref_dim=ref_dim, seed=4, interior=True)
    inputs.pop("key_padding_mask")  # a padded key (zero) would differ from the others
    with torch.no_grad():
        out = module(**inputs)

        value = module.value_proj(inputs["value"])
        samples, start = [], 0
        for level, (height, width) in enumerate(shapes):
            level_map = value[:, start : start + height * width].transpose(1, 2)
            level_map = level_map.reshape(2, 8, height, width)
            grid = 2 * inputs["reference_points"][:, :, level, None, :2] - 1
            sampled = F.grid_sample(level_map, grid, mode="bilinear", align_corners=False)
            samples.append(sampled[..., 0].transpose(1, 2))
            start += height * width
        expected = inputs["query"] + module.output_proj(torch.stack(samples).mean(dim=0))
    assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_reference", PATHS)
def test_zero_query_init_starts_as_msda_with_uniform_weights(use_reference):
    """With ``query_init="zeros"`` every logit starts at 0, so a fresh KDA computes what a
    fresh MSDA (zero-initialised attention weights: uniform) computes with the same sampling
    offsets and value / output projections; the query projection still gets a gradient."""
    shapes = [(5, 6), (3, 3)]
    sizes = dict(embed_dim=8, num_heads=2, num_levels=2, num_points=3)
    kda = KeyAwareDeformableAttention(**sizes, query_init="zeros", use_reference=use_reference)
    msda = MultiScaleDeformableAttention(**sizes, use_reference=True)
    randomize(kda, seed=3)
    torch.nn.init.zeros_(kda.query_proj.weight)
    torch.nn.init.zeros_(kda.query_proj.bias)
    for name in ("sampling_offsets", "value_proj", "output_proj"):
        getattr(msda, name).load_state_dict(getattr(kda, name).state_dict())
    inputs = make_inputs(8, shapes, batch=2, queries=4, ref_dim=4, seed=1)
    output = kda(**inputs)
    assert_close(output, msda(**inputs), rtol=1e-5, atol=1e-6)

    output.square().sum().backward()
    assert kda.query_proj.weight.grad.abs().sum() > 0


def test_query_init_zeroes_only_the_query_projection():
    zeros = KeyAwareDeformableAttention(query_init="zeros", proj_key=True)
    xavier = KeyAwareDeformableAttention(proj_key=True)
    assert torch.count_nonzero(zeros.query_proj.weight) == 0
    assert torch.count_nonzero(zeros.query_proj.bias) == 0
    assert torch.count_nonzero(zeros.key_proj.weight) > 0
    assert torch.count_nonzero(zeros.value_proj.weight) > 0
    assert torch.count_nonzero(xavier.query_proj.weight) > 0
    assert "query_init=zeros" in repr(zeros) and xavier.query_init == "xavier"
    with pytest.raises(ValueError, match="'query_init' must be one of"):
        KeyAwareDeformableAttention(query_init="zero")
