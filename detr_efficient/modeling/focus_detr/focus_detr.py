"""Focus-DETR (Zheng et al., ICCV 2023) on DINO: foreground token selection with top-down
score modulation, a cascade of kept-token ratios and dual attention in the encoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from detectron2.modeling import META_ARCH_REGISTRY

from ..multiscale import TokenMap
from ..token_selection import TokenSelectingDINO
from .assignment import PAPER_SCALE_RANGES, check_scale_ranges, foreground_loss, foreground_targets

__all__ = ["FocusDETR"]


@META_ARCH_REGISTRY.register()
class FocusDETR(TokenSelectingDINO):
    """DINO with Focus-DETR's encoder.

    - ``selector``: ``ForegroundTokenSelector(top_down=True)``, supervised by ground truth:
      ``foreground_targets`` with ``strides`` and ``scale_ranges`` (default: the paper's
      overlapping ranges; ``OFFICIAL_SCALE_RANGES`` are the official code's), focal loss
      normalised by positives, weight ``foreground_weight`` (``loss_foreground``).
    - ``encoder``: ``SelectiveTokenEncoder`` with the cascade of keep ratios and
      ``DualAttention`` layers, whose multi-category score uses ``enc_class_head`` (the
      two-stage class head).
    Everything else (denoising, query selection, decoder, losses) is DINO's.
    """

    def __init__(
        self,
        *,
        strides: Sequence[float] = (8, 16, 32, 64),
        scale_ranges: Sequence[Sequence[float]] = PAPER_SCALE_RANGES,
        foreground_weight: float = 1.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        levels = self.level_embed.shape[0]
        if len(strides) != levels:
            raise ValueError(f"FocusDETR: {len(strides)} strides for {levels} feature levels")
        check_scale_ranges(scale_ranges, levels)
        self.strides = tuple(float(s) for s in strides)
        self.scale_ranges = tuple((float(lo), float(hi)) for lo, hi in scale_ranges)
        self.foreground_weight = foreground_weight
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    def foreground_targets(self, token_map: TokenMap, batched_inputs: list[dict]) -> torch.Tensor:
        """Ground-truth foreground labels ``[B, S]`` of the tokens."""
        boxes = [x["instances"].gt_boxes.tensor.to(self.device) for x in batched_inputs]
        return foreground_targets(boxes, token_map.shapes, self.strides, self.scale_ranges)

    def selector_loss(
        self, scores: torch.Tensor, token_map: TokenMap, batched_inputs: list[dict]
    ) -> dict[str, torch.Tensor]:
        targets = self.foreground_targets(token_map, batched_inputs)
        loss = foreground_loss(
            scores, targets, ~token_map.padding_mask, self.focal_alpha, self.focal_gamma
        )
        return {"loss_foreground": self.foreground_weight * loss}
