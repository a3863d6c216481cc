"""Per-image token rows: gather the selected rows, scatter updated rows back (with autograd).

Focus-DETR and Sparse DETR update only a per-image subset of encoder tokens: ``select_topk``
picks the rows, ``gather_tokens`` collects them (and their positions, reference points, ...
in the same launch), and ``scatter_tokens`` writes the updated rows back. Rows are copied as
raw bytes, so any dtype works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import _extension
from ._validation import check_same_device, check_tensor

ANY_DTYPE = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
)


def check_token_index(op: str, index: torch.Tensor, num_tokens: int) -> None:
    """Every entry in ``[-1, num_tokens)`` and the non-negative entries of a row distinct.

    Reads the index (a device sync on the GPU); pass ``check_index=False`` to the ops for an
    index that ``select_topk`` produced.
    """
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < -1 or high >= num_tokens:
        raise IndexError(
            f"{op}: 'index' entries must be in [-1, {num_tokens}) (-1 = no token), "
            f"got values in [{low}, {high}]"
        )
    ordered = index.sort(dim=1).values
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if bool(repeated.any()):
        row = int(repeated.any(dim=1).nonzero()[0])
        raise ValueError(f"{op}: 'index' repeats a token in row {row}; rows must be distinct")


def _token_rows(op: str, name: str, x, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """Check that ``x`` is ``[B, N, *rest]`` (with ``[B, N] == shape`` where given) and
    return it as rows ``[B, N, C]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: '{name}' must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or (shape is not None and tuple(x.shape[:2]) != shape):
        expected = f"[{shape[0]}, {shape[1]}, ...]" if shape else "[B, N, ...]"
        raise ValueError(f"{op}: '{name}' must be {expected}, got {list(x.shape)}")
    if x.dtype not in ANY_DTYPE:
        raise TypeError(f"{op}: '{name}' has unsupported dtype {x.dtype}")
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


def _check_index(op: str, index, batch: int) -> None:
    check_tensor(op, "index", index, ("B", "K"), (torch.int64,))
    if index.shape[0] != batch:
        raise ValueError(f"{op}: 'index' has {index.shape[0]} rows for a batch of {batch}")


def gather_tokens_many(
    xs: Sequence[torch.Tensor], index: torch.Tensor, check_index: bool = True
) -> list[torch.Tensor]:
    """Gather rows of several tensors in one launch.

    Args:
        xs: tensors ``[B, N, *rest_t]`` (any dtypes, same B and N).
        index: ``[B, K]`` int64 in ``[-1, N)``, distinct per row; -1 gives a zero row.
        check_index: validate the index values (a device sync on the GPU).

    Returns:
        ``[B, K, *rest_t]`` for each tensor. Differentiable with respect to every ``xs``.
    """
    op = "gather_tokens"
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"{op}: 'xs' must be a non-empty list of tensors")
    batch, tokens = _token_rows(op, "xs[0]", xs[0]).shape[:2]
    rows = [_token_rows(op, f"xs[{i}]", x, (batch, tokens)) for i, x in enumerate(xs)]
    _check_index(op, index, batch)
    device = check_same_device(op, {"index": index, **{f"xs[{i}]": x for i, x in enumerate(xs)}})
    _extension.require_kernels_for(device, op)
    if check_index:
        check_token_index(op, index, tokens)
    outputs = torch.ops.detr_efficient.gather_tokens(rows, index)
    return [
        out.reshape(batch, index.shape[1], *x.shape[2:]) for out, x in zip(outputs, xs, strict=True)
    ]


def gather_tokens(x: torch.Tensor, index: torch.Tensor, check_index: bool = True) -> torch.Tensor:
    """``[B, N, *rest]``, index ``[B, K]`` → ``[B, K, *rest]`` (see ``gather_tokens_many``)."""
    return gather_tokens_many([x], index, check_index)[0]


def scatter_tokens(
    x: torch.Tensor, index: torch.Tensor, src: torch.Tensor, check_index: bool = True
) -> torch.Tensor:
    """A copy of ``x`` ``[B, N, *rest]`` with row ``index[b, k]`` replaced by ``src[b, k]``.

    ``index`` ``[B, K]`` int64 in ``[-1, N)``, distinct per row (-1 entries are skipped);
    ``src`` ``[B, K, *rest]`` with ``x``'s dtype and device. Differentiable with respect to
    ``x`` (the replaced rows get no gradient) and ``src``.
    """
    op = "scatter_tokens"
    rows = _token_rows(op, "x", x)
    batch, tokens = x.shape[:2]
    _check_index(op, index, batch)
    _token_rows(op, "src", src)
    if tuple(src.shape) != (batch, index.shape[1], *x.shape[2:]):
        raise ValueError(
            f"{op}: 'src' must be {[batch, index.shape[1], *x.shape[2:]]} for x "
            f"{list(x.shape)} and index {list(index.shape)}, got {list(src.shape)}"
        )
    if src.dtype != x.dtype:
        raise TypeError(f"{op}: 'src' must have x's dtype {x.dtype}, got {src.dtype}")
    device = check_same_device(op, {"x": x, "index": index, "src": src})
    _extension.require_kernels_for(device, op)
    if check_index:
        check_token_index(op, index, tokens)
    src_rows = src.reshape(batch, index.shape[1], math.prod(x.shape[2:]))
    return torch.ops.detr_efficient.scatter_tokens([rows], index, [src_rows])[0].reshape(x.shape)


def _gather_setup(ctx, inputs, output):
    xs, index = inputs
    ctx.save_for_backward(index)
    ctx.num_tokens = [x.shape[1] for x in xs]


def _gather_backward(ctx, grads):
    """Each gathered row's gradient goes back to its token; other tokens get zeros."""
    (index,) = ctx.saved_tensors
    present = [i for i, g in enumerate(grads) if g is not None]
    grad_xs = [None] * len(grads)
    if present:
        zeros = [
            grads[i].new_zeros(index.shape[0], ctx.num_tokens[i], grads[i].shape[2])
            for i in present
        ]
        scattered = torch.ops.detr_efficient.scatter_tokens(
            zeros, index, [grads[i] for i in present]
        )
        for i, grad in zip(present, scattered, strict=True):
            grad_xs[i] = grad
    return grad_xs, None


def _scatter_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.outputs = [(out.shape, out.dtype, out.device) for out in output]


def _scatter_backward(ctx, grads):
    """Replaced rows pass their gradient to ``srcs``; all other rows to ``xs``."""
    (index,) = ctx.saved_tensors
    grads = [
        g if g is not None else torch.zeros(shape, dtype=dtype, device=device)
        for g, (shape, dtype, device) in zip(grads, ctx.outputs, strict=True)
    ]
    zeros = [g.new_zeros(g.shape[0], index.shape[1], g.shape[2]) for g in grads]
    grad_xs = torch.ops.detr_efficient.scatter_tokens(grads, index, zeros)
    grad_srcs = torch.ops.detr_efficient.gather_tokens(grads, index)
    return grad_xs, None, grad_srcs


torch.library.register_autograd(
    "detr_efficient::gather_tokens", _gather_backward, setup_context=_gather_setup
)
torch.library.register_autograd(
    "detr_efficient::scatter_tokens", _scatter_backward, setup_context=_scatter_setup
)


@torch.library.register_fake("detr_efficient::gather_tokens")
def _gather_fake(xs, index):
    return [x.new_empty(x.shape[0], index.shape[1], x.shape[2]) for x in xs]


@torch.library.register_fake("detr_efficient::scatter_tokens")
def _scatter_fake(xs, index, srcs):
    return [torch.empty_like(x, memory_format=torch.contiguous_format) for x in xs]
