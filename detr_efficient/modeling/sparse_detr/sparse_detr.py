"""Sparse DETR (Roh et al., ICLR 2022) on DINO, the baseline Focus-DETR is compared with:
one scoring pass, the same kept ratio ρ in every encoder layer, and a scorer supervised by
the decoder's cross-attention map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.modeling import META_ARCH_REGISTRY

from detr_efficient import ops

from ..multiscale import TokenMap
from ..token_selection import TokenSelectingDINO, keep_counts
from .dam import decoder_attention_map

__all__ = ["SparseDETR", "dam_targets"]


def dam_targets(dam: torch.Tensor, valid: torch.Tensor, ratio: float) -> torch.Tensor:
    """Binary targets ``[B, S]``: each image's ``keep_counts(n_b, ratio)`` valid tokens with
    the largest decoder attention."""
    counts = keep_counts(valid.sum(1), ratio)
    width = int(counts.amax()) if len(counts) else 0
    index = ops.select_topk(dam, counts, valid=valid, max_k=width)
    targets = torch.zeros_like(dam)
    return targets.scatter_reduce(1, index.clamp(min=0), (index >= 0).to(dam.dtype), "amax")


@META_ARCH_REGISTRY.register()
class SparseDETR(TokenSelectingDINO):
    """DINO with Sparse DETR's encoder: ``selector`` is ``ForegroundTokenSelector(top_down=
    False)``, ``encoder`` a ``SelectiveTokenEncoder`` with ``keep_ratio`` in every layer and
    no dual attention. In training, the decoder's cross-attention sampling of the matching
    queries (all layers) gives the DAM; its top ``keep_ratio`` tokens are the scorer's
    targets (multi-label soft margin, i.e. mean binary cross-entropy over valid tokens,
    weight ``dam_weight``: ``loss_dam``)."""

    def __init__(self, *, keep_ratio: float = 0.3, dam_weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"SparseDETR: 'keep_ratio' must lie in (0, 1], got {keep_ratio}")
        self.keep_ratio = keep_ratio
        self.dam_weight = dam_weight
        for layer in self.decoder.layers:
            if not hasattr(layer.cross_attn, "record_sampling"):
                raise TypeError(
                    "SparseDETR: the decoder's cross-attention must record its sampling "
                    f"(MultiScaleDeformableAttention), got {type(layer.cross_attn).__name__}"
                )

    def train(self, mode: bool = True):
        super().train(mode)
        for layer in self.decoder.layers:
            layer.cross_attn.record_sampling = mode
            layer.cross_attn.recorded_sampling = None
        return self

    def selector_loss(
        self, scores: torch.Tensor, token_map: TokenMap, batched_inputs: list[dict]
    ) -> dict[str, torch.Tensor]:
        width = min(self.num_queries, int(scores.shape[1]))  # the matching queries come last
        samplings = []
        for layer in self.decoder.layers:
            locations, weights = layer.cross_attn.recorded_sampling
            layer.cross_attn.recorded_sampling = None
            samplings.append((locations[:, -width:], weights[:, -width:]))
        dam = decoder_attention_map(samplings, token_map.shapes, scores.shape[1])
        valid = ~token_map.padding_mask
        targets = dam_targets(dam, valid, self.keep_ratio)
        loss = F.binary_cross_entropy_with_logits(scores.float(), targets, reduction="none")
        loss = (loss * valid).sum() / valid.sum().clamp(min=1)
        return {"loss_dam": self.dam_weight * loss}
