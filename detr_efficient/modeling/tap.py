"""A detector's window for knowledge distillation: what one forward pass exposes (token map,
per-layer predictions and hidden states, the decoder's input queries) and the extra query
group it may be asked to decode alongside its own."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .multiscale import TokenMap

__all__ = ["DecoderTap", "QueryGroup", "isolated_group_mask"]


@dataclass
class QueryGroup:
    """Decoder input queries: content ``[B, T, C]`` and reference boxes ``[B, T, 4]``
    (normalised cxcywh)."""

    content: torch.Tensor
    reference: torch.Tensor

    def check(self, batch: int, embed_dim: int, where: str) -> None:
        """Raise ``ValueError`` unless content is ``[batch, T, embed_dim]`` and reference
        ``[batch, T, 4]``."""
        content, reference = self.content, self.reference
        if (
            content.dim() != 3
            or tuple(content.shape[::2]) != (batch, embed_dim)
            or tuple(reference.shape) != (*content.shape[:2], 4)
        ):
            raise ValueError(
                f"{where}: the query group needs content [{batch}, T, {embed_dim}] and "
                f"reference [{batch}, T, 4], got {tuple(content.shape)} and "
                f"{tuple(reference.shape)}"
            )


@dataclass
class DecoderTap:
    """Filled by a detector's forward while it is set as the detector's ``tap``.

    In: ``group``, extra queries decoded in the same pass as the detector's own but isolated
    from them in self-attention (no query attends across the group's border), so each side's
    outputs are those of a separate pass. Out, for the matching queries (not the denoising
    ones, not ``group``): ``token_map``, per decoder layer ``logits`` ``[B, Q, K]``, ``boxes``
    ``[B, Q, 4]`` and ``hidden`` ``[B, Q, C]``, ``queries``, their decoder input, and
    ``query_masks``, per layer bool ``[B, Q]`` of the queries that count (DDQ's distinct
    queries; None: all); and the group's per-layer ``group_logits`` / ``group_boxes``
    ``[B, T, *]``."""

    group: QueryGroup | None = None
    token_map: TokenMap | None = None
    logits: list[torch.Tensor] = field(default_factory=list)
    boxes: list[torch.Tensor] = field(default_factory=list)
    hidden: list[torch.Tensor] = field(default_factory=list)
    queries: QueryGroup | None = None
    query_masks: list[torch.Tensor] | None = None
    group_logits: list[torch.Tensor] = field(default_factory=list)
    group_boxes: list[torch.Tensor] = field(default_factory=list)

    def record(
        self, token_map, queries, logits, boxes, hidden, matching, group=None, query_masks=None
    ) -> None:
        """Keep the ``matching`` slice (and the ``group`` slice, when given) of the per-layer
        ``[B, P, *]`` ``logits``, ``boxes`` and ``hidden``, and the matching queries'
        per-layer ``query_masks`` (None: all count)."""
        self.token_map, self.queries, self.query_masks = token_map, queries, query_masks
        self.logits = [x[:, matching] for x in logits]
        self.boxes = [x[:, matching] for x in boxes]
        self.hidden = [x[:, matching] for x in hidden]
        if group is not None:
            self.group_logits = [x[:, group] for x in logits]
            self.group_boxes = [x[:, group] for x in boxes]


def isolated_group_mask(
    mask: torch.Tensor | None, start: int, size: int, total: int, device
) -> torch.Tensor:
    """Self-attention mask bool ``[total, total]`` (True = may not attend) for ``total``
    queries of which ``[start, start + size)`` form an isolated group: ``mask``, the mask of
    the other ``total - size`` queries in their order (None: all attend to all), around it."""
    others = torch.cat(
        [torch.arange(start, device=device), torch.arange(start + size, total, device=device)]
    )
    result = torch.ones(total, total, dtype=torch.bool, device=device)
    result[start : start + size, start : start + size] = False
    inner = (
        torch.zeros(total - size, total - size, dtype=torch.bool, device=device)
        if mask is None
        else mask
    )
    result[others[:, None], others[None, :]] = inner
    return result
