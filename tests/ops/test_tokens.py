"""gather_tokens / scatter_tokens against the repeat-index gather and per-image scatter loop."""

import pytest
import torch

from detr_efficient.ops import gather_tokens, gather_tokens_many, scatter_tokens, select_topk
from detr_efficient.ops.reference import gather_tokens_reference, scatter_tokens_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def distinct_index(batch, tokens, kept, seed, pad=True):
    """[B, kept] distinct token indices per row, a random tail of -1 when ``pad``."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.stack([torch.randperm(tokens, generator=generator)[:kept] for _ in range(batch)])
    if pad and kept:
        lengths = torch.randint(0, kept + 1, (batch,), generator=generator)
        index[torch.arange(kept)[None, :] >= lengths[:, None]] = -1
    return index


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("batch", "tokens", "kept", "channels"),
    [(1, 1, 1, 1), (2, 50, 20, 3), (2, 2000, 700, 256), (3, 33, 33, 7)],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_gather_and_scatter_match_references(device, batch, tokens, kept, channels, dtype):
    generator = torch.Generator().manual_seed(tokens)
    x = torch.randn(batch, tokens, channels, generator=generator).to(dtype)
    src = torch.randn(batch, kept, channels, generator=generator).to(dtype)
    index = distinct_index(batch, tokens, kept, seed=kept)
    gathered = gather_tokens(x.to(device), index.to(device)).cpu()
    assert torch.equal(gathered, gather_tokens_reference(x, index))
    scattered = scatter_tokens(x.to(device), index.to(device), src.to(device)).cpu()
    assert torch.equal(scattered, scatter_tokens_reference(x, index, src))


@pytest.mark.parametrize("device", DEVICES)
def test_many_tensors_of_mixed_dtypes_and_shapes_in_one_call(device):
    batch, tokens = 2, 40
    index = distinct_index(batch, tokens, 12, seed=0).to(device)
    tensors = [
        torch.randn(batch, tokens, 256).half(),  # tokens
        torch.randn(batch, tokens, 256),  # positions
        torch.rand(batch, tokens, 4, 2),  # reference points per level
        torch.randint(0, 9, (batch, tokens)),  # levels, int64
        torch.rand(batch, tokens) > 0.5,  # a mask
    ] + [torch.randn(batch, tokens, 3) for _ in range(6)]  # more than one launch's worth
    outputs = gather_tokens_many([t.to(device) for t in tensors], index)
    assert len(outputs) == len(tensors)
    for tensor, out in zip(tensors, outputs, strict=True):
        rows = tensor.reshape(batch, tokens, -1)
        expected = gather_tokens_reference(rows, index.cpu()).reshape(batch, 12, *tensor.shape[2:])
        assert out.dtype == tensor.dtype
        assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_select_gather_update_scatter_round_trip(device):
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randn(2, 300, 16, generator=generator).to(device)
    scores = torch.randn(2, 300, generator=generator).to(device)
    valid = (torch.arange(300)[None, :] < torch.tensor([[300], [180]])).to(device)
    index = select_topk(scores, (valid.sum(1) * 0.3).long() + 1, valid)
    updated = gather_tokens(tokens, index, check_index=False) * 2 + 1
    result = scatter_tokens(tokens, index, updated, check_index=False)
    chosen = torch.zeros(2, 300, dtype=torch.bool, device=device)
    for b in range(2):
        chosen[b, index[b][index[b] >= 0]] = True
    assert torch.equal(result[chosen], tokens[chosen] * 2 + 1)
    assert torch.equal(result[~chosen], tokens[~chosen])
    assert not chosen[~valid].any()


def test_gradients_float64():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    src = torch.randn(2, 4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    index = torch.tensor([[8, 0, -1, 3], [2, -1, -1, 5]])
    assert torch.autograd.gradcheck(lambda t: gather_tokens(t, index), (x,))
    assert torch.autograd.gradcheck(lambda t, s: scatter_tokens(t, index, s), (x, src))
    assert torch.autograd.gradgradcheck(lambda t, s: scatter_tokens(t, index, s), (x, src))
    positions = torch.randn(2, 9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, p: tuple(gather_tokens_many([t, p], index)), (x, positions)
    )


def test_gradient_of_an_unused_output_is_zero():
    x = torch.randn(1, 5, 2, requires_grad=True)
    positions = torch.randn(1, 5, 2, requires_grad=True)
    index = torch.tensor([[4, 1]])
    tokens, _ = gather_tokens_many([x, positions], index)
    tokens.sum().backward()
    assert x.grad[0, [1, 4]].eq(1).all() and x.grad[0, [0, 2, 3]].eq(0).all()
    assert positions.grad is None or not positions.grad.any()


def test_empty_selection_and_empty_batch():
    x = torch.randn(2, 6, 3)
    empty = torch.zeros(2, 0, dtype=torch.int64)
    assert gather_tokens(x, empty).shape == (2, 0, 3)
    assert torch.equal(scatter_tokens(x, empty, torch.zeros(2, 0, 3)), x)
    assert gather_tokens(torch.zeros(0, 6, 3), torch.zeros(0, 2, dtype=torch.int64)).shape == (
        0,
        2,
        3,
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda x, i, s: gather_tokens(x, torch.tensor([[0, 6], [1, 2]])),
            IndexError,
            r"\[-1, 6\)",
        ),
        (
            lambda x, i, s: gather_tokens(x, torch.tensor([[0, -2], [1, 2]])),
            IndexError,
            "got values",
        ),
        (lambda x, i, s: scatter_tokens(x, torch.tensor([[1, 1], [0, 2]]), s), ValueError, "row 0"),
        (lambda x, i, s: gather_tokens(x, i.int()), TypeError, "'index' must have dtype"),
        (lambda x, i, s: gather_tokens(x, i[:1]), ValueError, "1 rows for a batch of 2"),
        (lambda x, i, s: gather_tokens(x[0, 0], i), ValueError, r"'xs\[0\]' must be \[B, N, ...\]"),
        (lambda x, i, s: gather_tokens_many([x, x[:, :5]], i), ValueError, r"xs\[1\]"),
        (lambda x, i, s: gather_tokens_many([], i), TypeError, "non-empty list"),
        (lambda x, i, s: scatter_tokens(x, i, s[:, :1]), ValueError, "'src' must be"),
        (lambda x, i, s: scatter_tokens(x, i, s.double()), TypeError, "'src' must have x's dtype"),
        (lambda x, i, s: scatter_tokens(x, i.to("meta"), s), ValueError, "one device"),
        (lambda x, i, s: gather_tokens(x.to(torch.complex64), i), TypeError, "unsupported dtype"),
    ],
)
def test_bad_arguments(call, error, match):
    x = torch.randn(2, 6, 3)
    index = torch.tensor([[0, 5], [4, -1]])
    src = torch.randn(2, 2, 3)
    with pytest.raises(error, match=match):
        call(x, index, src)


def test_registrations_pass_opcheck():
    x = torch.randn(2, 7, 3, requires_grad=True)
    src = torch.randn(2, 3, 3, requires_grad=True)
    index = torch.tensor([[6, 0, -1], [1, 2, 3]])
    torch.library.opcheck(torch.ops.detr_efficient.gather_tokens.default, ([x], index))
    torch.library.opcheck(torch.ops.detr_efficient.scatter_tokens.default, ([x], index, [src]))
