"""Behaviour shared by MultiScaleDeformableAttention and KeyAwareDeformableAttention: shapes,
point-by-point equality, layouts, padding, gradients, low precision, argument checks, and the
kernel path against the reference path."""

import pytest
import torch
from deform_helpers import (
    DEVICES,
    NAIVE,
    PATHS,
    level_layout,
    make_inputs,
    randomize,
)
from torch.testing import assert_close

from detr_efficient.layers import KeyAwareDeformableAttention, MultiScaleDeformableAttention

MSDA, KDA = MultiScaleDeformableAttention, KeyAwareDeformableAttention
EMBED, HEADS, POINTS = 16, 4, 3
SHAPES = [(6, 7), (3, 4)]  # two levels, S = 54

CONFIGS = [
    pytest.param(MSDA, {}, id="msda"),
    pytest.param(MSDA, {"value_proj_ratio": 0.5}, id="msda-ratio0.5"),
    pytest.param(KDA, {}, id="kda"),
    pytest.param(KDA, {"proj_key": True}, id="kda-proj_key"),
]


def build(cls, extra, use_reference=True, **kwargs):
    options = {"embed_dim": EMBED, "num_heads": HEADS, "num_levels": len(SHAPES)}
    options.update(num_points=POINTS, use_reference=use_reference, **extra, **kwargs)
    return cls(**options)


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize("ref_dim", [2, 4])
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_output_shape_and_dtype(cls, extra, ref_dim, use_reference):
    module = build(cls, extra, use_reference)
    inputs = make_inputs(EMBED, SHAPES, batch=3, queries=7, ref_dim=ref_dim)
    out = module(**inputs)
    assert out.shape == (3, 7, EMBED)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("ref_dim", "with_identity"), [(2, False), (4, False), (2, True)])
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_matches_point_by_point_computation(cls, extra, ref_dim, with_identity, use_reference):
    module = build(cls, extra, use_reference)
    randomize(module, seed=ref_dim)
    inputs = make_inputs(EMBED, SHAPES, ref_dim=ref_dim, seed=3)
    if with_identity:
        inputs["identity"] = torch.randn(inputs["query"].shape)
    with torch.no_grad():
        out = module(**inputs)
    expected = NAIVE[cls](module, inputs)
    assert_close(out.double(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_batch_first_false_is_the_transposed_layout(cls, extra, use_reference):
    first = build(cls, extra, use_reference)
    randomize(first)
    second = build(cls, extra, use_reference, batch_first=False)
    second.load_state_dict(first.state_dict())
    inputs = make_inputs(EMBED, SHAPES, ref_dim=4)
    inputs["identity"] = torch.randn(inputs["query"].shape)
    transposed = dict(inputs)
    for name in ("query", "value", "query_pos", "identity"):
        transposed[name] = inputs[name].transpose(0, 1)
    with torch.no_grad():
        expected = first(**inputs)
        out = second(**transposed)
    assert out.shape == (inputs["query"].shape[1], inputs["query"].shape[0], EMBED)
    assert_close(out.transpose(0, 1), expected)


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_value_none_attends_to_the_query(cls, extra, use_reference):
    module = build(cls, extra, use_reference)
    randomize(module)
    spatial_shapes, starts, tokens = level_layout(SHAPES)
    query = torch.randn(2, tokens, EMBED)
    pos = torch.randn(2, tokens, EMBED)
    reference = torch.rand(2, tokens, len(SHAPES), 2)
    common = {"spatial_shapes": spatial_shapes, "level_start_index": starts}
    with torch.no_grad():
        out = module(query, None, pos, reference, **common)
        expected = module(query, query, pos, reference, **common)
    assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_padded_values_do_not_influence_the_output(cls, extra, use_reference):
    module = build(cls, extra, use_reference)
    randomize(module, offset_scale=2.0)  # points spread far, many land on the padding
    inputs = make_inputs(EMBED, SHAPES, batch=2, queries=6, seed=1)
    mask = torch.rand(inputs["key_padding_mask"].shape, generator=torch.Generator().manual_seed(0))
    mask = mask < 0.4
    inputs["key_padding_mask"] = mask
    with torch.no_grad():
        out = module(**inputs)
        perturbed = dict(inputs, value=inputs["value"] + 100.0 * mask[..., None])
        assert_close(module(**perturbed), out, rtol=0, atol=1e-6)
        # the same perturbation of the unpadded tokens does change it (the check has teeth)
        unpadded = dict(inputs, value=inputs["value"] + 100.0 * ~mask[..., None])
        assert (module(**unpadded) - out).abs().max() > 1.0


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_gradients_reach_every_parameter_and_input(cls, extra, use_reference):
    module = build(cls, extra, use_reference)
    weights = torch.randn(2, 5, EMBED, generator=torch.Generator().manual_seed(0))
    names = ("query", "value", "query_pos", "reference_points")

    def backward():
        module.zero_grad(set_to_none=True)
        inputs = make_inputs(EMBED, SHAPES, ref_dim=4, seed=2)
        for name in names:
            inputs[name].requires_grad_(True)
        (module(**inputs) * weights).sum().backward()
        return inputs

    backward()  # from the standard init (zero offset and attention-weight matrices)
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    # query_pos acts only through those zero matrices at init, so check inputs after training
    randomize(module)
    inputs = backward()
    for name in names:
        assert inputs[name].grad.abs().sum() > 0, name


@pytest.mark.parametrize("ref_dim", [2, 4])
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_gradcheck_float64(cls, extra, ref_dim):
    shapes = [(3, 4), (2, 2)]
    options = {"embed_dim": 4, "num_heads": 2, "num_levels": 2, "num_points": 2}
    module = cls(**options, use_reference=True, **extra).double()
    randomize(module, seed=5)
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    inputs = make_inputs(4, shapes, batch=1, queries=2, ref_dim=ref_dim, seed=4)
    tensors = [inputs[n].double().requires_grad_(True) for n in ("query", "value", "query_pos")]
    reference = inputs["reference_points"].double().requires_grad_(True)
    fixed = {k: inputs[k] for k in ("spatial_shapes", "level_start_index", "key_padding_mask")}

    def run(query, value, query_pos, reference_points, *parameters):
        state = dict(zip(names, parameters, strict=True))
        args = (query, value, query_pos, reference_points)
        return torch.func.functional_call(module, state, args, fixed)

    assert torch.autograd.gradcheck(run, (*tensors, reference, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_bf16_autocast_on_cpu_is_close_to_fp32(cls, extra, use_reference):
    module = build(cls, extra, use_reference)
    inputs = make_inputs(EMBED, SHAPES, ref_dim=2, seed=6, interior=True)
    with torch.no_grad():
        expected = module(**inputs) - inputs["query"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(**inputs)
    assert torch.isfinite(out).all()
    error = (out.float() - inputs["query"] - expected).norm() / expected.norm()
    assert error < 0.03


@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_half_precision_module_is_close_to_fp32(cls, extra, dtype, use_reference):
    module = build(cls, extra, use_reference)
    inputs = make_inputs(EMBED, SHAPES, ref_dim=4, seed=7, interior=True)
    with torch.no_grad():
        expected = module(**inputs) - inputs["query"]
        low = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
        out = module.to(dtype)(**low)
    assert out.dtype == dtype
    error = (out.float() - inputs["query"].to(dtype).float() - expected).norm() / expected.norm()
    assert error < 0.05


def test_dropout_acts_in_training_only():
    module = build(MSDA, {}, dropout=0.5)
    plain = build(MSDA, {})
    plain.load_state_dict(module.state_dict())
    inputs = make_inputs(EMBED, SHAPES)
    with torch.no_grad():
        module.eval()
        assert_close(module(**inputs), plain(**inputs), rtol=0, atol=0)
        module.train()
        assert not torch.allclose(module(**inputs), plain(**inputs))


FORWARD_ERRORS = [
    ("query_2d", {"query": lambda a: a["query"][0]}, ValueError, "'query'"),
    ("query_channels", {"query": lambda a: a["query"][..., :8]}, ValueError, "'query'"),
    ("query_int", {"query": lambda a: a["query"].long()}, TypeError, "'query'"),
    ("query_pos_shape", {"query_pos": lambda a: a["query_pos"][:, :2]}, ValueError, "'query_pos'"),
    ("identity_shape", {"identity": lambda a: a["query"][:1]}, ValueError, "'identity'"),
    ("value_channels", {"value": lambda a: a["value"][..., :8]}, ValueError, "'value'"),
    ("value_batch", {"value": lambda a: a["value"][:1]}, ValueError, "'value'"),
    (
        "value_tokens",
        {"value": lambda a: a["value"][:, :-1], "key_padding_mask": None},
        ValueError,
        "'spatial_shapes'",
    ),
    (
        "shapes_not_positive",
        {"spatial_shapes": lambda a: torch.tensor([[6, 7], [0, 4]])},
        ValueError,
        "'spatial_shapes'",
    ),
    ("ref_missing", {"reference_points": None}, TypeError, "'reference_points'"),
    (
        "ref_last_dim",
        {"reference_points": lambda a: torch.rand(2, 5, 2, 3)},
        ValueError,
        "'reference_points'",
    ),
    (
        "ref_levels",
        {"reference_points": lambda a: torch.rand(2, 5, 3, 2)},
        ValueError,
        "'reference_points'",
    ),
    (
        "ref_3d",
        {"reference_points": lambda a: torch.rand(2, 5, 2)},
        ValueError,
        "'reference_points'",
    ),
    (
        "ref_queries",
        {"reference_points": lambda a: torch.rand(2, 4, 2, 2)},
        ValueError,
        "'reference_points'",
    ),
    (
        "ref_int",
        {"reference_points": lambda a: torch.ones(2, 5, 2, 2, dtype=torch.long)},
        TypeError,
        "'reference_points'",
    ),
    ("shapes_missing", {"spatial_shapes": None}, TypeError, "'spatial_shapes'"),
    (
        "shapes_float",
        {"spatial_shapes": lambda a: a["spatial_shapes"].float()},
        ValueError,
        "'spatial_shapes'",
    ),
    (
        "shapes_levels",
        {"spatial_shapes": lambda a: a["spatial_shapes"][:1]},
        ValueError,
        "'spatial_shapes'",
    ),
    (
        "starts_int32",
        {"level_start_index": lambda a: a["level_start_index"].int()},
        ValueError,
        "'level_start_index'",
    ),
    (
        "starts_values",
        {"level_start_index": lambda a: torch.tensor([0, 40])},
        ValueError,
        "'level_start_index'",
    ),
    (
        "mask_float",
        {"key_padding_mask": lambda a: a["key_padding_mask"].float()},
        ValueError,
        "'key_padding_mask'",
    ),
    (
        "mask_shape",
        {"key_padding_mask": lambda a: a["key_padding_mask"][:, 1:]},
        ValueError,
        "'key_padding_mask'",
    ),
]


@pytest.mark.parametrize(
    ("changes", "error", "name"), [pytest.param(*case[1:], id=case[0]) for case in FORWARD_ERRORS]
)
@pytest.mark.parametrize("use_reference", PATHS)
@pytest.mark.parametrize("cls", [MSDA, KDA])
def test_bad_forward_arguments_raise_errors_naming_them(cls, use_reference, changes, error, name):
    module = build(cls, {}, use_reference)
    inputs = make_inputs(EMBED, SHAPES)
    for key, change in changes.items():
        inputs[key] = change(inputs) if callable(change) else change
    with pytest.raises(error, match=name):
        module(**inputs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (MSDA, {"embed_dim": 10, "num_heads": 4}, "'embed_dim'"),
        (KDA, {"embed_dim": 10, "num_heads": 4}, "'embed_dim'"),
        (MSDA, {"embed_dim": 32, "num_heads": 4, "value_proj_ratio": 0.3}, "'value_proj_ratio'"),
        (MSDA, {"num_points": 0}, "'num_points'"),
        (KDA, {"num_levels": 0}, "'num_levels'"),
        (KDA, {"num_heads": 2.0}, "'num_heads'"),
        (MSDA, {"dropout": 1.0}, "'dropout'"),
    ],
)
def test_bad_constructor_arguments_raise_errors_naming_them(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ref_dim", [2, 4])
@pytest.mark.parametrize(("cls", "extra"), CONFIGS)
def test_kernel_path_matches_reference_path(cls, extra, ref_dim, device):
    kernel = build(cls, extra, use_reference=False)
    randomize(kernel, seed=8, offset_scale=1.0)
    reference = build(cls, extra, use_reference=True)
    reference.load_state_dict(kernel.state_dict())
    kernel.to(device)
    reference.to(device)
    inputs = make_inputs(EMBED, SHAPES, batch=3, queries=9, ref_dim=ref_dim, seed=9)
    grads = {}
    for path, module in (("kernel", kernel), ("reference", reference)):
        args = {k: v.to(device) for k, v in inputs.items()}
        for name in ("query", "value", "reference_points"):
            args[name].requires_grad_(True)
        out = module(**args)
        out.pow(2).sum().backward()
        grads[path] = {
            "out": out.detach(),
            **{name: args[name].grad for name in ("query", "value", "reference_points")},
            **{name: p.grad for name, p in module.named_parameters()},
        }
    for name, expected in grads["reference"].items():
        assert_close(grads["kernel"][name], expected, atol=1e-4, rtol=1e-4, msg=name)
