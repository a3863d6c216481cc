"""select_topk against a per-image torch.sort reference."""

import pytest
import torch

from detr_efficient.ops import select_topk
from detr_efficient.ops.reference import select_topk_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def make_case(batch, tokens, seed, levels=None, pad=True):
    generator = torch.Generator().manual_seed(seed)
    if levels:
        scores = torch.randint(0, levels, (batch, tokens), generator=generator).float()
    else:
        scores = torch.randn(batch, tokens, generator=generator)
    valid = torch.ones(batch, tokens, dtype=torch.bool)
    if pad:  # padded images: a random tail of each row is padding
        lengths = torch.randint(0, tokens + 1, (batch,), generator=generator)
        valid = torch.arange(tokens)[None, :] < lengths[:, None]
    k = torch.randint(0, tokens + 3, (batch,), generator=generator)
    return scores, k, valid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("batch", "tokens"), [(1, 1), (2, 17), (3, 100), (4, 1000), (2, 5000)])
@pytest.mark.parametrize("levels", [None, 3])
def test_matches_reference_with_padding_and_ties(device, batch, tokens, levels):
    scores, k, valid = make_case(batch, tokens, seed=batch * tokens, levels=levels)
    expected = select_topk_reference(scores, k, valid)
    got = select_topk(scores.to(device), k.to(device), valid.to(device)).cpu()
    assert torch.equal(got, expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes(device, dtype):
    scores, k, valid = make_case(3, 300, seed=1)
    scores = scores.to(dtype)
    expected = select_topk_reference(scores, k, valid)
    assert torch.equal(
        select_topk(scores.to(device), k.to(device), valid.to(device)).cpu(), expected
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("masked", [False, True])
def test_transposed_scores(device, masked):
    """A dense but transposed ``scores`` (strides (1, B)): torch.sort gives its indices the
    same strides, which a kernel reading them row-major must not assume away."""
    scores, k, valid = make_case(3, 40, seed=8)
    transposed = scores.t().contiguous().t()
    assert transposed.stride() == (1, 3)
    valid = valid if masked else None
    expected = select_topk_reference(scores, k, valid)
    got = select_topk(
        transposed.to(device), k.to(device), None if valid is None else valid.to(device)
    )
    assert torch.equal(got.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_without_mask_and_hand_computed(device):
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9, float("nan")], [3.0, 2.0, 1.0, 0.0, -1.0]])
    k = torch.tensor([4, 2])
    got = select_topk(scores.to(device), k.to(device)).cpu()
    assert got.tolist() == [[4, 1, 3, 2], [0, 1, -1, -1]]


@pytest.mark.parametrize("device", DEVICES)
def test_invalid_tokens_never_selected_and_k_clamped(device):
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    valid = torch.tensor([[False, True, False, True], [False, False, False, False]])
    got = select_topk(scores.to(device), torch.tensor([4, 3]).to(device), valid.to(device)).cpu()
    assert got.tolist() == [[1, 3, -1, -1], [-1, -1, -1, -1]]


@pytest.mark.parametrize("device", DEVICES)
def test_max_k_caps_width_and_k(device):
    scores, k, valid = make_case(3, 50, seed=4, pad=False)
    got = select_topk(scores.to(device), k.to(device), max_k=7).cpu()
    expected = select_topk_reference(scores, k.clamp(max=7))
    assert got.shape == (3, 7)
    assert torch.equal(got[:, : expected.shape[1]], expected)
    assert select_topk(scores.to(device), 0).shape == (3, 0)


def test_empty_inputs():
    assert select_topk(torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64)).shape == (0, 0)
    assert select_topk(torch.zeros(2, 0), torch.tensor([3, 1])).shape == (2, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scores": torch.rand(5)}, ValueError, "'scores' must have shape"),
        ({"k": torch.tensor([1, 2, 3])}, ValueError, "'k' must have shape"),
        ({"k": torch.tensor([1.0, 2.0])}, TypeError, "'k' must have dtype"),
        ({"k": torch.tensor([-1, 2])}, ValueError, "'k' must be >= 0"),
        ({"valid": torch.ones(2, 4)}, TypeError, "'valid' must have dtype"),
        ({"valid": torch.ones(2, 3, dtype=torch.bool)}, ValueError, "'valid' must have shape"),
        ({"max_k": -2}, ValueError, "'max_k' must be an int >= 0"),
        ({"scores": torch.rand(2, 4, dtype=torch.float64).to(torch.int32)}, TypeError, "dtype"),
        ({"valid": torch.ones(2, 4, dtype=torch.bool, device="meta")}, ValueError, "one device"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"scores": torch.rand(2, 4), "k": torch.tensor([1, 2]), **kwargs}
    with pytest.raises(error, match=match):
        select_topk(**arguments)


def test_direct_op_calls_check_the_mask():
    scores, k, _ = make_case(2, 30, seed=2)
    with pytest.raises(RuntimeError, match="valid must be bool"):
        torch.ops.detr_efficient.select_topk(scores, k, torch.ones(2, 29, dtype=torch.bool), 10)


def test_fake_tensor_and_schema():
    scores, k, valid = make_case(2, 30, seed=2)
    torch.library.opcheck(
        torch.ops.detr_efficient.select_topk.default,
        (scores, k, valid, 10),
        test_utils=("test_schema", "test_faketensor"),
    )
