"""Per-image top-k selection of tokens by score, with per-image k and a padding mask."""

from __future__ import annotations

import torch

from . import _extension
from ._validation import FLOATING_DTYPES, check_same_device, check_tensor


def select_topk(
    scores: torch.Tensor,
    k: torch.Tensor | int,
    valid: torch.Tensor | None = None,
    max_k: int | None = None,
) -> torch.Tensor:
    """Indices of each image's ``k[b]`` best valid tokens.

    Args:
        scores: ``[B, N]`` float16/bfloat16/float32/float64.
        k: ``[B]`` int64 (or one int for all images), >= 0; clamped to the image's valid count.
        valid: ``[B, N]`` bool, or None (all valid). Invalid tokens are never selected.
        max_k: width of the result; default ``min(max(k), N)``, which reads ``k`` (a device
            sync on the GPU). Pass it to avoid the sync; ``k`` is also capped by it.

    Returns:
        ``[B, K]`` int64: row b holds its selected token indices by descending score (equal
        scores: lower index first; NaN ranks first, as in ``torch.sort``), then -1.
    """
    op = "select_topk"
    check_tensor(op, "scores", scores, ("B", "N"), FLOATING_DTYPES)
    batch, tokens = scores.shape
    if isinstance(k, int) and not isinstance(k, bool):
        k = torch.full((batch,), k, dtype=torch.int64, device=scores.device)
    check_tensor(op, "k", k, (batch,), (torch.int64,))
    tensors = {"scores": scores, "k": k}
    if valid is not None:
        check_tensor(op, "valid", valid, (batch, tokens), (torch.bool,))
        tensors["valid"] = valid
    device = check_same_device(op, tensors)
    _extension.require_kernels_for(device, op)
    if max_k is None:
        if batch and int(k.min()) < 0:
            raise ValueError(f"{op}: 'k' must be >= 0, got {k.tolist()}")
        width = min(int(k.max()), tokens) if batch else 0
    else:
        if isinstance(max_k, bool) or not isinstance(max_k, int) or max_k < 0:
            raise ValueError(f"{op}: 'max_k' must be an int >= 0, got {max_k!r}")
        width = min(max_k, tokens)
    return torch.ops.detr_efficient.select_topk(scores, k, valid, width)


@torch.library.register_fake("detr_efficient::select_topk")
def _select_topk_fake(scores, k, valid, width):
    return scores.new_empty((scores.shape[0], width), dtype=torch.int64)
