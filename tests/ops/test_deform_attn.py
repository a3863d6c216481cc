"""ms_deform_attn and key_aware_deform_attn against the float64 grid_sample references."""

import pytest
import torch

from detr_efficient.ops import deform_attn as deform_attn_module
from detr_efficient.ops import (
    deform_attn_threads_per_block,
    key_aware_deform_attn,
    ms_deform_attn,
)
from detr_efficient.ops._checked_levels import CheckedLevels
from detr_efficient.ops.reference import (
    key_aware_deform_attn_reference,
    ms_deform_attn_reference,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]

# (B, level shapes, H, D, Q, P): odd sizes, one level, H and D not powers of two.
CASES = [
    (1, [(1, 1)], 1, 1, 1, 1),
    (2, [(4, 5), (2, 3)], 3, 5, 7, 2),
    (2, [(8, 8), (4, 4), (2, 2), (1, 1)], 8, 32, 33, 4),
    (1, [(13, 7)], 2, 33, 9, 3),
    (3, [(6, 10), (3, 5), (2, 3)], 4, 64, 20, 4),
]


def make_inputs(batch, shapes, heads, channels, queries, points, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    level_start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    tokens, levels = int(sizes.sum()), len(shapes)

    def randn(*size):
        return torch.randn(*size, generator=generator, dtype=torch.float64).to(dtype)

    # Locations in [-0.2, 1.2]: some points fall outside the maps and read zeros.
    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=generator)
    return {
        "query": randn(batch, queries, heads, channels),
        "key": randn(batch, tokens, heads, channels),
        "value": randn(batch, tokens, heads, channels),
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": (locations.double() * 1.4 - 0.2).to(dtype),
        "attention_weights": torch.rand(batch, queries, heads, levels, points, generator=generator)
        .double()
        .softmax(-1)
        .to(dtype),
    }


def msda_args(inputs):
    names = ["value", "spatial_shapes", "level_start_index", "sampling_locations"]
    return [inputs[n] for n in names] + [inputs["attention_weights"]]


def kda_args(inputs):
    names = ["query", "key", "value", "spatial_shapes", "level_start_index", "sampling_locations"]
    return [inputs[n] for n in names]


def to(args, device, requires_grad=False):
    moved = [a.to(device) for a in args]
    for a in moved:
        if requires_grad and a.is_floating_point():
            a.requires_grad_(True)
    return moved


def grads_of(fn, args, grad_output):
    fn(*args).backward(grad_output)
    return [a.grad for a in args if a.is_floating_point()]


OPS = {
    "msda": (ms_deform_attn, ms_deform_attn_reference, msda_args),
    "kda": (key_aware_deform_attn, key_aware_deform_attn_reference, kda_args),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", OPS)
def test_forward_and_all_gradients_match_float64_reference(device, case, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(*case, seed=sum(case[3:]))
    ours = to(pick(inputs), device, requires_grad=True)
    theirs = to(pick(inputs), "cpu", requires_grad=True)
    out = kernel(*ours)
    expected = reference(*theirs)
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-10)
    grad_output = torch.randn_like(expected)
    for got, want in zip(
        grads_of(kernel, ours, grad_output.to(device)),
        grads_of(reference, theirs, grad_output),
        strict=True,
    ):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-9, atol=1e-9)


def test_threads_per_block_setting_round_trips_and_is_checked():
    before = deform_attn_threads_per_block()
    try:
        assert deform_attn_threads_per_block(128) == before
        assert deform_attn_threads_per_block() == 128
        with pytest.raises(ValueError, match="must be one of"):
            deform_attn_threads_per_block(100)
        with pytest.raises(RuntimeError, match="64, 128, 256 or 512"):
            torch.ops.detr_efficient.deform_attn_threads_per_block(1024)
        assert deform_attn_threads_per_block() == 128
    finally:
        deform_attn_threads_per_block(before)
    assert before == 256


@pytest.mark.gpu
@pytest.mark.parametrize("threads", [64, 128, 512])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # one channel/lane, vectors
@pytest.mark.parametrize("op", OPS)
def test_cuda_block_sizes_give_the_reference(threads, dtype, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(2, [(8, 8), (4, 4), (2, 2), (1, 1)], 8, 32, 33, 4, seed=4)
    cast = [a.to(dtype) if a.is_floating_point() else a for a in pick(inputs)]
    ours = to(cast, "cuda", requires_grad=True)
    theirs = to(pick(inputs), "cpu", requires_grad=True)
    grad_output = torch.randn(2, 33, 8 * 32, dtype=torch.float64)
    before = deform_attn_threads_per_block(threads)
    try:
        out = kernel(*ours)
        got = grads_of(kernel, ours, grad_output.to("cuda", dtype))
    finally:
        deform_attn_threads_per_block(before)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(
        out.cpu().double(), reference(*theirs), rtol=tolerance, atol=tolerance
    )
    for g, want in zip(got, grads_of(reference, theirs, grad_output), strict=True):
        torch.testing.assert_close(g.cpu().double(), want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", OPS)
def test_gradcheck_float64(device, op):
    kernel, _, pick = OPS[op]
    # Locations away from pixel centres: bilinear sampling is not differentiable there.
    inputs = make_inputs(2, [(3, 4), (2, 2)], 2, 3, 4, 2, seed=11)
    args = to(pick(inputs), device, requires_grad=True)
    # the CUDA backward sums with atomic adds in no fixed order: not bit-reproducible
    nondet_tol = 1e-12 if device == "cuda" else 0.0
    assert torch.autograd.gradcheck(kernel, args, eps=1e-6, atol=1e-5, nondet_tol=nondet_tol)


@pytest.mark.parametrize("device", DEVICES)
def test_key_may_be_the_value_tensor(device):
    inputs = make_inputs(2, [(5, 6), (3, 3)], 4, 8, 6, 4, seed=3)
    query, value, locations = to(
        [inputs["query"], inputs["value"], inputs["sampling_locations"]], device, True
    )
    levels = [inputs["spatial_shapes"].to(device), inputs["level_start_index"].to(device)]
    out = key_aware_deform_attn(query, value, value, *levels, locations)
    out.square().sum().backward()
    q_ref, v_ref, l_ref = (t.detach().cpu().requires_grad_(True) for t in (query, value, locations))
    levels_ref = [inputs["spatial_shapes"], inputs["level_start_index"]]
    expected = key_aware_deform_attn_reference(q_ref, v_ref, v_ref, *levels_ref, l_ref)
    expected.square().sum().backward()
    torch.testing.assert_close(out.cpu(), expected)
    torch.testing.assert_close(value.grad.cpu(), v_ref.grad)  # key and value gradients summed
    torch.testing.assert_close(locations.grad.cpu(), l_ref.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [(torch.float32, 1e-5), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)],
)
@pytest.mark.parametrize("op", OPS)
def test_low_precision_within_its_precision(device, dtype, tolerance, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(2, [(8, 8), (4, 4), (2, 2)], 4, 32, 40, 4, seed=5)
    rounded = {k: v.to(dtype).double() if v.is_floating_point() else v for k, v in inputs.items()}
    expected = reference(*pick(rounded))  # float64 on the inputs as rounded to dtype
    args = [a.to(dtype) if a.is_floating_point() else a for a in pick(inputs)]
    out = kernel(*to(args, device))
    assert out.dtype == dtype
    torch.testing.assert_close(
        out.double().cpu(), expected, rtol=tolerance, atol=tolerance * expected.abs().max()
    )


# On CUDA, D = 8, 16, 64, 128 are one to sixteen 16-byte vectors of 8 channels per head, held
# by groups of 4, 4, 8 and 16 lanes; D = 12 and 36 are one channel per lane.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [8, 12, 16, 36, 64, 128])
@pytest.mark.parametrize("op", OPS)
def test_low_precision_gradients(device, dtype, channels, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(1, [(6, 6), (3, 3)], 2, channels, 12, 4, seed=8)
    rounded = {k: v.to(dtype).double() if v.is_floating_point() else v for k, v in inputs.items()}
    theirs = to(pick(rounded), "cpu", requires_grad=True)
    ours = to([a.to(dtype) if a.is_floating_point() else a for a in pick(inputs)], device, True)
    grad_output = torch.randn(1, 12, 2 * channels, dtype=torch.float64)
    outputs = [kernel(*ours)] + grads_of(kernel, ours, grad_output.to(device, dtype))
    expected = [reference(*theirs)] + grads_of(reference, theirs, grad_output.to(dtype).double())
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == dtype
        scale = want.abs().max().item() + 1e-6
        torch.testing.assert_close(got.double().cpu(), want, rtol=0.05, atol=0.02 * scale)


# On CUDA, D = 4, 8, 32, 64, 128 float32 channels are 16-byte vectors of 4 held by groups of
# 4, 4, 8, 16 and 32 lanes; D = 33, 70, 126 are one channel per lane in two, three and four
# chunks. B*Q*H = 21 tasks leave the last groups of a warp idle.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [4, 8, 32, 33, 64, 70, 126, 128])
@pytest.mark.parametrize("op", OPS)
def test_float32_forward_and_gradients_for_every_lane_layout(device, channels, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(1, [(5, 6), (3, 3)], 3, channels, 7, 3, seed=channels)
    rounded = {k: v.float().double() if v.is_floating_point() else v for k, v in inputs.items()}
    theirs = to(pick(rounded), "cpu", requires_grad=True)
    ours = to([a.float() if a.is_floating_point() else a for a in pick(inputs)], device, True)
    expected = reference(*theirs)
    torch.testing.assert_close(kernel(*ours).double().cpu(), expected, rtol=1e-5, atol=1e-5)
    grad_output = torch.randn_like(expected).float()
    for got, want in zip(
        grads_of(kernel, ours, grad_output.to(device)),
        grads_of(reference, theirs, grad_output.double()),
        strict=True,
    ):
        assert got.dtype == torch.float32
        scale = want.abs().max().item() + 1.0
        torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", OPS)
def test_non_finite_locations_sample_zeros_like_points_far_outside(device, op):
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(4, 5), (2, 3)], 2, 32, 9, 2, seed=13, dtype=torch.float32)
    far = inputs["sampling_locations"].clone()
    bad = torch.zeros_like(far, dtype=torch.bool)
    bad[0, 1, 0, 0, 1, 0] = bad[1, 3, 1, 1, 0, 1] = bad[1, 5, 0, :, :, :] = True
    far[bad] = -10.0
    non_finite = far.clone()
    nan, inf = float("nan"), float("inf")
    non_finite[bad] = torch.tensor([nan, inf, -inf]).repeat(8)[: bad.sum()]
    results = []
    for locations in (far, non_finite):
        args = to(pick({**inputs, "sampling_locations": locations}), device, requires_grad=True)
        out = kernel(*args)
        out.square().sum().backward()
        results.append([out, *(a.grad for a in args if a.is_floating_point())])
    for got, want in zip(results[1], results[0], strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def _one_element_in(t):
    """A contiguous copy of t that starts one element into its storage (off 16-byte boundaries)."""
    storage = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    return storage[1:].view_as(t).copy_(t)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("op", OPS)
def test_tensors_off_16_byte_boundaries_give_the_same_results(device, dtype, tolerance, op):
    # On CUDA, one such tensor makes the kernels read one channel per lane instead of 16-byte
    # vectors: each input (and the output gradient) is moved off the boundary in turn.
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(4, 5), (2, 3)], 2, 32, 9, 2, seed=12, dtype=torch.float32)
    args = to([a.to(dtype) if a.is_floating_point() else a for a in pick(inputs)], device)
    out = kernel(*args)
    grad_output = torch.randn_like(out)

    def results(call_args, grad):
        leaves = [a.detach().requires_grad_(a.is_floating_point()) for a in call_args]
        return [kernel(*leaves), *grads_of(kernel, leaves, grad)]

    expected = results(args, grad_output)
    floating = [i for i, a in enumerate(args) if a.is_floating_point()]
    for moved in [*floating, "grad_output"]:
        call_args = [_one_element_in(a) if i == moved else a for i, a in enumerate(args)]
        grad = _one_element_in(grad_output) if moved == "grad_output" else grad_output
        for got, want in zip(results(call_args, grad), expected, strict=True):
            scale = want.abs().max().item() + 1.0
            torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance * scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", OPS)
def test_float32_locations_with_low_precision_values(device, op):
    kernel, reference, pick = OPS[op]
    inputs = make_inputs(1, [(50, 60)], 2, 8, 10, 2, seed=4)
    args = pick(inputs)
    low = [
        a.to(torch.float32 if name.startswith(("sampling", "attention")) else torch.bfloat16)
        if a.is_floating_point()
        else a
        for a, name in zip(args, _names(op), strict=True)
    ]
    rounded = [a.double() if a.is_floating_point() else a for a in low]
    out = kernel(*to(low, device))
    expected = reference(*rounded)
    torch.testing.assert_close(out.double().cpu(), expected, rtol=2e-2, atol=2e-2)


def _names(op):
    if op == "msda":
        return ["value", "shapes", "starts", "sampling_locations", "attention_weights"]
    return ["query", "key", "value", "shapes", "starts", "sampling_locations"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", OPS)
def test_every_output_element_written(device, op):
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(4, 4), (2, 2)], 2, 8, 30, 2, seed=6, dtype=torch.float32)
    for _ in range(3):  # poison the memory the allocator will hand out next
        poison = torch.full((2, 30, 16), float("nan"), device=device)
        del poison
        out = kernel(*to(pick(inputs), device))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("op", OPS)
def test_empty_batch_and_zero_queries(op):
    kernel, _, pick = OPS[op]
    for batch, queries in [(0, 5), (2, 0)]:
        inputs = make_inputs(batch, [(3, 3)], 2, 4, queries, 2, seed=1)
        assert kernel(*pick(inputs)).shape == (batch, queries, 8)


def test_hand_computed_sample():
    # A 2x2 map; a point at the centre averages the four pixels equally.
    value = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    shapes, starts = torch.tensor([[2, 2]]), torch.tensor([0])
    centre = torch.full((1, 1, 1, 1, 1, 2), 0.5)
    weight = torch.ones(1, 1, 1, 1, 1)
    assert ms_deform_attn(value, shapes, starts, centre, weight).item() == pytest.approx(2.5)
    # At pixel (x=1, y=0)'s centre: exactly that pixel. Far outside: zero.
    pixel = torch.tensor([0.75, 0.25]).reshape(1, 1, 1, 1, 1, 2)
    assert ms_deform_attn(value, shapes, starts, pixel, weight).item() == pytest.approx(2.0)
    outside = torch.tensor([3.0, -5.0]).reshape(1, 1, 1, 1, 1, 2)
    assert ms_deform_attn(value, shapes, starts, outside, weight).item() == 0.0


def test_kda_hand_computed_softmax():
    # Two points on a 1x2 map: keys k1 = 1, k2 = 3 (D=1), q = 1: weights softmax(1, 3).
    key = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1)
    value = torch.tensor([10.0, 20.0]).reshape(1, 2, 1, 1)
    query = torch.ones(1, 1, 1, 1)
    locations = torch.tensor([[0.25, 0.5], [0.75, 0.5]]).reshape(1, 1, 1, 1, 2, 2)
    out = key_aware_deform_attn(
        query, key, value, torch.tensor([[1, 2]]), torch.tensor([0]), locations
    )
    w = torch.tensor([1.0, 3.0]).softmax(0)
    assert out.item() == pytest.approx(float(10 * w[0] + 20 * w[1]))


@pytest.mark.parametrize("device", DEVICES)
def test_kda_logit_overflowing_to_minus_infinity_weighs_nothing(device):
    # q . k = 1e20 * -1e20 overflows float32 to -inf at the first point, before any finite
    # logit: its weight is 0, as in the reference's softmax, and the output is the second
    # point's value. Its gradients are the reference's too (zero, not 0 * inf = NaN).
    key = torch.tensor([-1e20, 1.0]).reshape(1, 2, 1, 1)
    value = torch.tensor([10.0, 20.0]).reshape(1, 2, 1, 1)
    query = torch.full((1, 1, 1, 1), 1e20)
    locations = torch.tensor([[0.25, 0.5], [0.75, 0.5]]).reshape(1, 1, 1, 1, 2, 2)
    args = [query, key, value, torch.tensor([[1, 2]]), torch.tensor([0]), locations]
    ours = to(args, device, requires_grad=True)
    expected = to(args, "cpu", requires_grad=True)
    out = key_aware_deform_attn(*ours)
    assert out.item() == 20.0
    assert key_aware_deform_attn_reference(*expected).item() == 20.0
    got = [g.cpu() for g in grads_of(key_aware_deform_attn, ours, torch.ones_like(out))]
    want = grads_of(key_aware_deform_attn_reference, expected, torch.ones(1, 1, 1))
    for name, g, w in zip(["query", "key", "value", "locations"], got, want, strict=True):
        assert torch.isfinite(w).all(), name
        torch.testing.assert_close(g, w, msg=name)


BAD_CALLS = [
    ("value", torch.zeros(2, 26, 3), ValueError, "'value' must have shape"),
    ("value", torch.zeros(2, 26, 3, 4, dtype=torch.int32), TypeError, "'value' must have dtype"),
    ("spatial_shapes", torch.tensor([[4, 5], [2, 2]]), ValueError, "cover 24 tokens"),
    ("spatial_shapes", torch.tensor([[4, 5], [2, 3]]).int(), TypeError, "'spatial_shapes'"),
    ("spatial_shapes", torch.tensor([[4, 5], [-2, -3]]), ValueError, "must be positive"),
    ("level_start_index", torch.tensor([0, 19]), ValueError, r"must be \[0, 20\]"),
    ("level_start_index", torch.tensor([0, 20], device="meta"), ValueError, "one device"),
    ("sampling_locations", torch.zeros(2, 7, 3, 2, 2, 3), ValueError, "'sampling_locations'"),
    ("sampling_locations", torch.zeros(2, 7, 3, 0, 2, 2), ValueError, "at least one level"),
    ("attention_weights", torch.zeros(2, 7, 3, 2, 3), ValueError, "'attention_weights'"),
    ("attention_weights", torch.zeros(2, 7, 3, 2, 2, device="meta"), ValueError, "one device"),
]


@pytest.mark.parametrize(("name", "bad", "error", "match"), BAD_CALLS)
def test_bad_arguments_name_the_argument(name, bad, error, match):
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0, dtype=torch.float32)
    inputs[name] = bad
    with pytest.raises(error, match=match):
        ms_deform_attn(*msda_args(inputs))
    if name != "attention_weights":
        with pytest.raises(error, match=match):
            key_aware_deform_attn(*kda_args(inputs))


@pytest.fixture
def level_reads(monkeypatch):
    """Counts host reads of the level tensors, starting from an empty ``CheckedLevels``."""
    reads = []

    def counting(spatial_shapes, level_start_index):
        reads.append(spatial_shapes)
        return real(spatial_shapes, level_start_index)

    real = deform_attn_module._read_levels
    monkeypatch.setattr(deform_attn_module, "_read_levels", counting)
    monkeypatch.setattr(deform_attn_module, "_checked_levels", CheckedLevels(capacity=2))
    return reads


def test_an_unchanged_level_pair_is_read_back_once(level_reads):
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0, dtype=torch.float32)
    for _ in range(3):
        ms_deform_attn(*msda_args(inputs))
        key_aware_deform_attn(*kda_args(inputs))
    assert len(level_reads) == 1
    # the same values in new tensors, and a value of another size, are checked again
    copies = dict(inputs, spatial_shapes=inputs["spatial_shapes"].clone())
    ms_deform_attn(*msda_args(copies))
    assert len(level_reads) == 2
    longer = dict(inputs, value=torch.zeros(2, 27, 3, 4))
    with pytest.raises(ValueError, match="cover 26 tokens"):
        ms_deform_attn(*msda_args(longer))
    assert len(level_reads) == 3


def test_a_level_pair_changed_in_place_is_checked_again(level_reads):
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0, dtype=torch.float32)
    ms_deform_attn(*msda_args(inputs))
    inputs["level_start_index"][1] = 19
    with pytest.raises(ValueError, match=r"must be \[0, 20\]"):
        ms_deform_attn(*msda_args(inputs))
    inputs["level_start_index"][1] = 20
    inputs["spatial_shapes"][1, 1] = 2
    with pytest.raises(ValueError, match="cover 24 tokens"):
        key_aware_deform_attn(*kda_args(inputs))
    assert len(level_reads) == 3


def test_level_pairs_beyond_the_capacity_and_inference_tensors_are_read_again(level_reads):
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0, dtype=torch.float32)
    pairs = [dict(inputs, spatial_shapes=inputs["spatial_shapes"].clone()) for _ in range(3)]
    for pair in pairs + pairs[:1]:  # capacity 2: the first pair was dropped
        ms_deform_attn(*msda_args(pair))
    assert len(level_reads) == 4
    with torch.inference_mode():
        frozen = dict(inputs, spatial_shapes=inputs["spatial_shapes"].clone())
        for _ in range(2):
            ms_deform_attn(*msda_args(frozen))
    assert len(level_reads) == 6


def test_kda_query_key_checks():
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0, dtype=torch.float32)
    inputs["query"] = inputs["query"].double()
    with pytest.raises(TypeError, match="must share a dtype"):
        key_aware_deform_attn(*kda_args(inputs))
    inputs["query"] = torch.zeros(2, 7, 3, 5)
    with pytest.raises(ValueError, match="'query' must have shape"):
        key_aware_deform_attn(*kda_args(inputs))


@pytest.mark.parametrize("device", DEVICES)
def test_direct_calls_with_levels_too_large_for_the_map_read_zeros(device):
    """The op itself (no Python checks, as under torch.compile) with levels covering more
    tokens than ``value`` has: the tokens past the map read as zeros, exactly as the
    reference does on the map padded with zeros to the size the levels claim."""
    inputs = make_inputs(2, [(4, 5), (3, 3)], 2, 3, 6, 2, seed=6)
    small = inputs["value"][:, :20]  # 20 of the 29 tokens the levels cover
    padded = torch.cat([small, torch.zeros_like(inputs["value"][:, 20:])], dim=1)
    levels = [inputs["spatial_shapes"], inputs["level_start_index"]]
    rest = [inputs["sampling_locations"], inputs["attention_weights"]]
    got = torch.ops.detr_efficient.ms_deform_attn(*to([small, *levels, *rest], device))
    torch.testing.assert_close(got.cpu(), ms_deform_attn_reference(padded, *levels, *rest))
    query, locations = inputs["query"], inputs["sampling_locations"]
    got, _ = torch.ops.detr_efficient.key_aware_deform_attn(
        *to([query, small, small, *levels, locations], device)
    )
    expected = key_aware_deform_attn_reference(query, padded, padded, *levels, locations)
    # the reference's zero tokens still take part in the softmax with logit 0, as ours do
    torch.testing.assert_close(got.cpu(), expected)


def test_direct_calls_check_the_other_inputs():
    inputs = make_inputs(2, [(4, 5), (2, 3)], 3, 4, 7, 2, seed=0)
    msda = msda_args(inputs)
    with pytest.raises(RuntimeError, match="attention_weights must be"):
        torch.ops.detr_efficient.ms_deform_attn(*msda[:4], msda[4][:, :5])
    kda = kda_args(inputs)
    with pytest.raises(RuntimeError, match="query must be"):
        torch.ops.detr_efficient.key_aware_deform_attn(kda[0][:, :, :2], *kda[1:])
    with pytest.raises(RuntimeError, match="key must have value's dtype"):
        torch.ops.detr_efficient.key_aware_deform_attn(kda[0], kda[1].float(), *kda[2:])
    grad = torch.zeros(2, 7, 11, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="grad_output must be"):
        torch.ops.detr_efficient.ms_deform_attn_backward(grad, *msda)
    grad = torch.zeros(2, 7, 12, dtype=torch.float32)
    with pytest.raises(RuntimeError, match="grad_output must have value's dtype"):
        torch.ops.detr_efficient.ms_deform_attn_backward(grad, *msda)


@pytest.mark.parametrize("op", OPS)
def test_registrations_pass_opcheck(op):
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(3, 4), (2, 2)], 2, 4, 5, 2, seed=2, dtype=torch.float32)
    args = to(pick(inputs), "cpu", requires_grad=True)
    target = {"msda": torch.ops.detr_efficient.ms_deform_attn, "kda": None}[op]
    target = target or torch.ops.detr_efficient.key_aware_deform_attn
    torch.library.opcheck(target.default, tuple(args))


@pytest.mark.parametrize("op", OPS)
def test_compiles_without_graph_breaks(op):
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(3, 4), (2, 2)], 2, 4, 5, 2, seed=2, dtype=torch.float32)
    args = to(pick(inputs), "cpu", requires_grad=True)
    compiled = torch.compile(kernel, backend="aot_eager", fullgraph=True)
    out = compiled(*args)
    torch.testing.assert_close(out, kernel(*args))
    out.sum().backward()
    assert all(a.grad is not None for a in args if a.is_floating_point())


@pytest.mark.parametrize(
    ("device", "dtype"),
    [("cpu", torch.bfloat16), pytest.param("cuda", torch.float16, marks=pytest.mark.gpu)],
)
@pytest.mark.parametrize("op", OPS)
def test_autocast_runs_attended_tensors_in_low_precision(device, dtype, op):
    kernel, _, pick = OPS[op]
    inputs = make_inputs(2, [(6, 6), (3, 3)], 2, 16, 9, 2, seed=7, dtype=torch.float32)
    args = to(pick(inputs), device, requires_grad=True)
    with torch.autocast(device, dtype=dtype):
        out = kernel(*args)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), kernel(*args), rtol=0.05, atol=0.05)
    out.float().sum().backward()
    for arg in args:
        if arg.is_floating_point():  # gradients come back in each input's own dtype
            assert arg.grad is not None and arg.grad.dtype == torch.float32
