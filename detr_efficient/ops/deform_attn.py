"""Multi-scale deformable attention (Deformable DETR) and key-aware deformable attention
(Lite DETR): argument checks, autograd and tracing registrations of the kernels.

Semantics are those of :func:`.reference.ms_deform_attn_reference` and
:func:`.reference.key_aware_deform_attn_reference` (bilinear ``grid_sample`` with zero padding
and ``align_corners=False``). value/query/key may be float16, bfloat16, float32 or float64;
sampling locations and attention weights may be any floating dtype and are read in float32
(float64 for float64 values), so low-precision values keep full-precision locations.
"""

from __future__ import annotations

import torch

from . import _extension
from ._checked_levels import CheckedLevels
from ._validation import FLOATING_DTYPES, check_same_device, check_tensor

# The CUDA kernels keep up to 4 channels per lane of a warp in registers.
MAX_CUDA_CHANNELS = 128
# Level pairs already read back and found valid (one device sync per pair, not per call).
_checked_levels = CheckedLevels()


def _read_levels(spatial_shapes, level_start_index) -> list[int]:
    """The ``3L`` values of both tensors in one host copy."""
    both = [spatial_shapes.reshape(-1), level_start_index.to(spatial_shapes.device)]
    return torch.cat(both).tolist()


def check_level_values(owner: str, spatial_shapes, level_start_index, tokens: int) -> None:
    """``spatial_shapes`` int64 ``[L, 2]`` positive and covering ``tokens`` (S);
    ``level_start_index`` int64 ``[L]`` their offsets. Errors name ``owner``.

    Reads the two small tensors in one copy (a device sync when they live on the GPU), once
    per pair while it stays unchanged (``CheckedLevels``)."""
    if _checked_levels.contains(spatial_shapes, level_start_index, tokens):
        return
    levels = spatial_shapes.shape[0]
    both = _read_levels(spatial_shapes, level_start_index)
    shapes = [both[2 * level : 2 * level + 2] for level in range(levels)]
    starts = both[2 * levels :]
    if any(h <= 0 or w <= 0 for h, w in shapes):
        raise ValueError(f"{owner}: 'spatial_shapes' must be positive (H_l, W_l), got {shapes}")
    sizes = [h * w for h, w in shapes]
    if sum(sizes) != tokens:
        raise ValueError(
            f"{owner}: 'spatial_shapes' cover {sum(sizes)} tokens (sum of H_l * W_l) but "
            f"'value' has S = {tokens}"
        )
    expected = [sum(sizes[:level]) for level in range(levels)]
    if starts != expected:
        raise ValueError(
            f"{owner}: 'level_start_index' must be {expected} for spatial_shapes {shapes}, "
            f"got {starts}"
        )
    _checked_levels.add(spatial_shapes, level_start_index, tokens)


def _check_levels(op: str, spatial_shapes, level_start_index, value, levels: int) -> None:
    """``spatial_shapes`` ``[L, 2]`` and ``level_start_index`` ``[L]`` as
    ``check_level_values`` wants them, both on ``value``'s device; the values are not checked
    while ``torch.compile`` traces (the kernels then read tokens past the map as zeros
    instead of out of bounds)."""
    check_tensor(op, "spatial_shapes", spatial_shapes, (levels, 2), (torch.int64,))
    check_tensor(op, "level_start_index", level_start_index, (levels,), (torch.int64,))
    if torch.compiler.is_compiling():  # values are unknown while tracing
        return
    levels_and_value = {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
    }
    check_same_device(op, levels_and_value)
    check_level_values(op, spatial_shapes, level_start_index, value.shape[1])


def _check_common(op: str, value, spatial_shapes, level_start_index, sampling_locations) -> tuple:
    """Checks shared by both ops; returns (B, S, H, D, Q, L, P)."""
    check_tensor(op, "value", value, ("B", "S", "H", "D"), FLOATING_DTYPES)
    batch, tokens, heads, channels = value.shape
    check_tensor(op, "sampling_locations", sampling_locations, (batch, "Q", heads, "L", "P", 2))
    _, queries, _, levels, points, _ = sampling_locations.shape
    if levels == 0 or points == 0:
        raise ValueError(f"{op}: need at least one level and one point, got L={levels}, P={points}")
    _check_levels(op, spatial_shapes, level_start_index, value, levels)
    return batch, tokens, heads, channels, queries, levels, points


def _check_device(op: str, tensors: dict, channels: int) -> None:
    device = check_same_device(op, tensors)
    _extension.require_kernels_for(device, op)
    if device.type == "cuda" and channels > MAX_CUDA_CHANNELS:
        raise ValueError(
            f"{op}: at most {MAX_CUDA_CHANNELS} channels per head on CUDA, got D = {channels}"
        )


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention.

    Args:
        value: ``[B, S, H, D]``, the flattened levels of every head.
        spatial_shapes: int64 ``[L, 2]``, (H_l, W_l) of each level; ``sum H_l * W_l == S``.
        level_start_index: int64 ``[L]``, first token of each level.
        sampling_locations: ``[B, Q, H, L, P, 2]``, normalised (x, y); outside [0, 1] reads 0.
        attention_weights: ``[B, Q, H, L, P]``.

    Returns:
        ``[B, Q, H * D]`` in value's dtype. Differentiable with respect to value, locations
        and weights.
    """
    op = "ms_deform_attn"
    batch, _, heads, channels, queries, levels, points = _check_common(
        op, value, spatial_shapes, level_start_index, sampling_locations
    )
    check_tensor(
        op, "attention_weights", attention_weights, (batch, queries, heads, levels, points)
    )
    tensors = {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
        "attention_weights": attention_weights,
    }
    _check_device(op, tensors, channels)
    return torch.ops.detr_efficient.ms_deform_attn(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )


def key_aware_deform_attn(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
) -> torch.Tensor:
    """Key-aware deformable attention: keys and values sampled at the same points, weights
    ``softmax`` over the L * P points of a head of ``q · k / sqrt(D)``, in one fused pass.

    Args:
        query: ``[B, Q, H, D]``.
        key, value: ``[B, S, H, D]``, query's dtype; ``key`` may be the same tensor as
            ``value`` (Lite DETR's official setting).
        spatial_shapes, level_start_index, sampling_locations: as in ``ms_deform_attn``.

    Returns:
        ``[B, Q, H * D]``. Differentiable with respect to query, key, value and locations.
    """
    op = "key_aware_deform_attn"
    batch, tokens, heads, channels, queries, _, _ = _check_common(
        op, value, spatial_shapes, level_start_index, sampling_locations
    )
    check_tensor(op, "query", query, (batch, queries, heads, channels), FLOATING_DTYPES)
    check_tensor(op, "key", key, (batch, tokens, heads, channels), FLOATING_DTYPES)
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            f"{op}: query, key and value must share a dtype, got {query.dtype}, {key.dtype}, "
            f"{value.dtype}"
        )
    tensors = {
        "query": query,
        "key": key,
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
    }
    _check_device(op, tensors, channels)
    output, _ = torch.ops.detr_efficient.key_aware_deform_attn(
        query, key, value, spatial_shapes, level_start_index, sampling_locations
    )
    return output


THREADS_PER_BLOCK_CHOICES = (64, 128, 256, 512)


def deform_attn_threads_per_block(threads: int | None = None) -> int:
    """Threads per block of the CUDA deformable-attention kernels, a process-wide setting
    (256 unless changed): returns the setting in force before the call and, given
    ``threads`` (one of ``THREADS_PER_BLOCK_CHOICES``), changes it. Made for measuring launch
    shapes side by side (``tools/benchmark_kernels.py --threads-per-block``); the CPU
    kernels ignore it."""
    if threads is not None and threads not in THREADS_PER_BLOCK_CHOICES:
        raise ValueError(
            f"deform_attn_threads_per_block: threads must be one of "
            f"{THREADS_PER_BLOCK_CHOICES}, got {threads!r}"
        )
    return int(torch.ops.detr_efficient.deform_attn_threads_per_block(threads or 0))


def _msda_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _msda_backward(ctx, grad_output):
    value, shapes, starts, locations, weights = ctx.saved_tensors
    grad_value, grad_locations, grad_weights = torch.ops.detr_efficient.ms_deform_attn_backward(
        grad_output.contiguous(), value, shapes, starts, locations, weights
    )
    return grad_value, None, None, grad_locations, grad_weights


def _kda_setup(ctx, inputs, output):
    out, logsumexp = output
    ctx.mark_non_differentiable(logsumexp)
    ctx.save_for_backward(*inputs, out, logsumexp)


def _kda_backward(ctx, grad_output, _grad_logsumexp):
    query, key, value, shapes, starts, locations, out, logsumexp = ctx.saved_tensors
    grads = torch.ops.detr_efficient.key_aware_deform_attn_backward(
        grad_output.contiguous(), query, key, value, shapes, starts, locations, out, logsumexp
    )
    grad_query, grad_key, grad_value, grad_locations = grads
    return grad_query, grad_key, grad_value, None, None, grad_locations


torch.library.register_autograd(
    "detr_efficient::ms_deform_attn", _msda_backward, setup_context=_msda_setup
)
torch.library.register_autograd(
    "detr_efficient::key_aware_deform_attn", _kda_backward, setup_context=_kda_setup
)


def _flat_output(value, sampling_locations):
    batch, _, heads, channels = value.shape
    return value.new_empty(batch, sampling_locations.shape[1], heads * channels)


def _compute_dtype(value) -> torch.dtype:
    return torch.float64 if value.dtype == torch.float64 else torch.float32


@torch.library.register_fake("detr_efficient::ms_deform_attn")
def _msda_fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    return _flat_output(value, sampling_locations)


@torch.library.register_fake("detr_efficient::ms_deform_attn_backward")
def _msda_backward_fake(grad_output, value, shapes, starts, locations, weights):
    return torch.empty_like(value), torch.empty_like(locations), torch.empty_like(weights)


@torch.library.register_fake("detr_efficient::key_aware_deform_attn")
def _kda_fake(query, key, value, spatial_shapes, level_start_index, sampling_locations):
    logsumexp = value.new_empty(query.shape[:3], dtype=_compute_dtype(value))
    return _flat_output(value, sampling_locations), logsumexp


@torch.library.register_fake("detr_efficient::key_aware_deform_attn_backward")
def _kda_backward_fake(grad_output, query, key, value, shapes, starts, locations, out, lse):
    return (
        torch.empty_like(query),
        torch.empty_like(key),
        torch.empty_like(value),
        torch.empty_like(locations),
    )
