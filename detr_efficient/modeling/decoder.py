"""The deformable transformer decoder with iterative box refinement (Deformable DETR) and,
optionally, DINO's query positions from boxes and look-forward-twice."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from detr_efficient.layers import MLP, sine_embed_coords
from detr_efficient.layers.box_ops import inverse_sigmoid

from .multiscale import TokenMap

__all__ = ["DeformableTransformerDecoder"]


class DeformableTransformerDecoder(nn.Module):
    """``num_layers`` copies of ``layer`` (``DeformableDecoderLayer``); each refines the
    reference boxes with its box head.

    - ``query_pos_from_boxes``: each layer's query position is ``ref_point_head(sine(box))``
      (DINO, conditional queries); otherwise a fixed ``query_pos`` is given (Deformable DETR).
    - ``look_forward_twice``: the refined boxes returned for layer ``l`` keep their gradient,
      so layer ``l + 1``'s prediction also trains layer ``l`` (DINO); the boxes fed to the
      next layer are always detached.
    - ``final_norm``: a LayerNorm on the returned hidden states (DINO).
    - ``refine_eps``: the clamp of ``inverse_sigmoid`` in the refinement (Deformable DETR's
      code uses 1e-5, DINO's and mmdetection's DDQ-DETR 1e-3; it matters only for boxes
      within ``refine_eps`` of 0 or 1).

    The box heads (one per layer, possibly the same module) belong to the detector and are
    passed to ``forward``.
    """

    def __init__(
        self,
        layer: nn.Module,
        num_layers: int = 6,
        embed_dim: int = 256,
        query_pos_from_boxes: bool = False,
        look_forward_twice: bool = False,
        final_norm: bool = False,
        refine_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(
                f"DeformableTransformerDecoder: 'num_layers' must be >= 1, got {num_layers}"
            )
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.embed_dim = embed_dim
        self.look_forward_twice = look_forward_twice
        self.ref_point_head = (
            MLP(2 * embed_dim, embed_dim, embed_dim, 2) if query_pos_from_boxes else None
        )
        self.norm = nn.LayerNorm(embed_dim) if final_norm else None
        self.refine_eps = float(refine_eps)

    def forward(
        self,
        query: torch.Tensor,
        reference_boxes: torch.Tensor,
        token_map: TokenMap,
        memory: torch.Tensor,
        box_heads: list[nn.Module],
        query_pos: torch.Tensor | None = None,
        self_attn_mask: torch.Tensor | None = None,
        next_attn_mask: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """query ``[B, Q, C]``, reference_boxes ``[B, Q, 4]`` (cxcywh in [0, 1]), memory
        ``[B, S, C]`` → (hidden ``[B, Q, C]`` per layer, references: ``num_layers + 1``
        boxes ``[B, Q, 4]``, the input then each layer's refinement).

        ``self_attn_mask``: bool ``[Q, Q]`` or ``[B * heads, Q, Q]``, True = may not attend.
        ``next_attn_mask(i, hidden, boxes)``, when given, is called after every layer ``i``
        but the last with its hidden states and detached refined boxes and returns the mask of
        the following layers (DDQ's distinct queries)."""
        if (query_pos is None) == (self.ref_point_head is None):
            raise ValueError(
                "DeformableTransformerDecoder: pass 'query_pos' exactly when the decoder does "
                "not derive query positions from boxes (query_pos_from_boxes=False)"
            )
        if len(box_heads) != len(self.layers):
            raise ValueError(
                f"DeformableTransformerDecoder: need one box head per layer ({len(self.layers)}), "
                f"got {len(box_heads)}"
            )
        ratios = torch.cat([token_map.valid_ratios, token_map.valid_ratios], dim=-1)[:, None]
        hidden, references = [], [reference_boxes]
        boxes = reference_boxes.detach()
        for layer, box_head in zip(self.layers, box_heads, strict=True):
            scaled = boxes[:, :, None] * ratios.to(boxes.dtype)  # [B, Q, L, 4]
            pos = query_pos
            if self.ref_point_head is not None:
                sine = sine_embed_coords(scaled[:, :, 0], self.embed_dim // 2).to(query.dtype)
                pos = self.ref_point_head(sine)
            query = layer(
                query,
                pos,
                scaled,
                memory,
                token_map.spatial_shapes,
                token_map.level_start_index,
                token_map.padding_mask,
                self_attn_mask,
            )
            refined = (box_head(query) + inverse_sigmoid(boxes, self.refine_eps)).sigmoid()
            boxes = refined.detach()
            references.append(refined if self.look_forward_twice else boxes)
            hidden.append(self.norm(query) if self.norm is not None else query)
            if next_attn_mask is not None and len(hidden) < len(self.layers):
                self_attn_mask = next_attn_mask(len(hidden) - 1, hidden[-1], boxes)
        return hidden, references
