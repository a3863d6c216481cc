"""Element-wise loss and cost terms shared by the matcher and the set criterion."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["focal_class_cost", "sigmoid_focal_loss"]


def _check_focal_params(alpha: float, gamma: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"focal 'alpha' must lie in [0, 1], got {alpha}")
    if gamma < 0.0:
        raise ValueError(f"focal 'gamma' must be >= 0, got {gamma}")


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise sigmoid focal loss (Lin et al.): ``logits`` and ``targets`` (in [0, 1]) of the
    same shape ``[...]`` → ``[...]``, ``alpha_t * (1 - p_t)^gamma * BCE``. No reduction."""
    _check_focal_params(alpha, gamma)
    if logits.shape != targets.shape:
        raise ValueError(
            f"sigmoid_focal_loss: 'targets' shape {tuple(targets.shape)} differs from "
            f"'logits' shape {tuple(logits.shape)}"
        )
    targets = targets.to(logits.dtype)
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * bce


def focal_class_cost(
    logits: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-8
) -> torch.Tensor:
    """Matching cost of labelling each query with each class: ``[..., K]`` logits → ``[..., K]``,
    the focal loss of a positive minus that of a negative (Deformable DETR's matcher)."""
    _check_focal_params(alpha, gamma)
    prob = logits.sigmoid()
    positive = alpha * (1 - prob) ** gamma * -(prob + eps).log()
    negative = (1 - alpha) * prob**gamma * -(1 - prob + eps).log()
    return positive - negative
