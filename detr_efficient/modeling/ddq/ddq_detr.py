"""DDQ-DETR: DINO whose queries are made distinct by class-agnostic NMS, with an auxiliary
branch of dense queries trained one-to-many."""

from __future__ import annotations

from collections.abc import Callable

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from detr_efficient import ops
from detr_efficient.layers.box_ops import inverse_sigmoid

from ..dino import DINO
from ..heads import box_head, class_head
from ..tap import QueryGroup
from .dense_loss import DenseQueryLoss
from .distinct import distinct_attn_mask, select_distinct, suppress_duplicates

__all__ = ["DDQDETR"]


def _split_head(main: nn.Module, dense: nn.Module, split: int) -> Callable:
    """A box head applying ``main`` to the first ``split`` queries and ``dense`` to the rest."""

    def head(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([main(x[:, :split]), dense(x[:, split:])], dim=1)

    return head


@META_ARCH_REGISTRY.register()
class DDQDETR(DINO):
    """DDQ-DETR (SPEC §5) on DINO.

    - **Distinct queries.** The encoder proposals go through class-agnostic NMS at
      ``distinct_iou`` (0.8) on their best class score; the ``num_queries`` best survivors
      are the queries (fewer when fewer survive: the rest are padding, never distinct).
      Their content is ``query_map`` of the (detached) encoder memory at the proposal, not
      a learned embedding.
    - **Between decoder layers**, NMS at ``decoder_distinct_iou`` (0.8) over the refined boxes
      of the still-distinct queries marks the others suppressed: in the following layers
      two suppressed queries ignore each other (``distinct_attn_mask``), and the one-to-one
      loss of the next layer and the detections use the distinct queries only. The set is
      read per query (the public implementations read row 0 of the attention mask, which
      treats every query as distinct whenever query 0 survived).
    - **Dense queries** (training only): the ``dense_ratio * num_queries`` best proposals of
      a second encoder head, without NMS, run through the same decoder in their own
      attention block with their own class and box heads, trained by ``dense_loss``
      (one-to-many, quality focal). Losses ``loss_dense_{class,giou}{_i,_enc}``.
    - Denoising, the one-to-one losses and everything else are DINO's; the encoder loss
      covers the distinct queries (``encoder_loss_on`` must stay ``"selected"``). The NMS
      scores are the class head's on the normalised hidden states (the official code scores
      the un-normalised ones, which the heads never see).
    """

    def __init__(
        self,
        *,
        dense_loss: DenseQueryLoss,
        distinct_iou: float = 0.8,
        decoder_distinct_iou: float = 0.8,
        dense_ratio: float = 1.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if self.encoder_loss_on != "selected":
            raise ValueError(
                f"{type(self).__name__}: the encoder loss covers the distinct queries; "
                f"'encoder_loss_on' must be 'selected', got {self.encoder_loss_on!r}"
            )
        if not dense_ratio > 0:
            raise ValueError(f"DDQDETR: 'dense_ratio' must be > 0, got {dense_ratio}")
        del self.query_content  # the content comes from the encoder memory
        embed_dim, layers = self.embed_dim, len(self.decoder.layers)
        self.query_map = nn.Linear(embed_dim, embed_dim)
        self.dense_enc_class_head = class_head(embed_dim, self.num_classes)
        self.dense_enc_box_head = box_head(embed_dim)
        self.dense_class_heads = nn.ModuleList(
            class_head(embed_dim, self.num_classes) for _ in range(layers)
        )
        self.dense_box_heads = nn.ModuleList(box_head(embed_dim) for _ in range(layers))
        self.dense_loss = dense_loss
        self.distinct_iou = distinct_iou
        self.decoder_distinct_iou = decoder_distinct_iou
        self.num_dense = int(dense_ratio * self.num_queries)

    def select_distinct_queries(self, proposed, mapped):
        """The ``num_queries`` best proposals surviving NMS; ``proposed``: ``propose()``'s
        output, ``mapped``: ``query_map`` of the memory ``[B, S, C]`` → see ``_take``."""
        output_memory, proposals, valid = proposed
        logits = self.enc_class_head(output_memory)
        coords = self.enc_box_head(output_memory) + proposals  # [B, S, 4] unnormalised
        width = min(self.num_queries, int(logits.shape[1]))
        scores = logits.detach().float().amax(-1).sigmoid()  # fp32: no ties from half rounding
        index = select_distinct(coords.sigmoid(), scores, valid, self.distinct_iou, width)
        return self._take(index, logits, coords, mapped)

    def select_dense_queries(self, proposed, mapped):
        """Training: the best proposals of the dense encoder head, no NMS → see ``_take``."""
        output_memory, proposals, valid = proposed
        logits = self.dense_enc_class_head(output_memory)
        coords = self.dense_enc_box_head(output_memory) + proposals
        width = min(self.num_dense, int(logits.shape[1]))
        index = ops.select_topk(logits.amax(-1).detach().float(), width, valid=valid, max_k=width)
        return self._take(index, logits, coords, mapped)

    @staticmethod
    def _take(index, logits, coords, mapped):
        """Selected proposals ``index`` ``[B, K]`` (-1: padding) → (reference boxes ``[B, K,
        4]`` detached, content ``[B, K, C]``, encoder logits ``[B, K, classes]`` and boxes
        ``[B, K, 4]`` for the loss, real (not padding) bool ``[B, K]``)."""
        logits, coords, content = ops.gather_tokens_many(
            [logits, coords, mapped], index, check_index=False
        )
        return coords.detach().sigmoid(), content, logits, coords.sigmoid(), index >= 0

    def decode(self, images, token_map, memory, batched_inputs, targets):
        """Queries run in the order denoising, the tap's group (see ``tapped``), distinct
        (matching), dense; the group and the dense queries each in their own attention
        block."""
        proposed = self.propose(token_map, memory)
        mapped = self.query_map(memory.detach())
        reference, content, enc_logits, enc_boxes, distinct = self.select_distinct_queries(
            proposed, mapped
        )
        batch = reference.shape[0]
        queries = QueryGroup(content, reference)
        group = self.tap.group if self.tap is not None else None
        dn = self.denoising(targets) if self.training and self.denoising is not None else None
        dense = self.select_dense_queries(proposed, mapped) if self.training else None
        stacked, inner, dn_size, group_size = self.stack_queries(queries, dn, group)
        content, reference = stacked.content, stacked.reference
        front = content.shape[1]  # everything but the dense queries
        num_dense = 0
        if dense is not None:
            num_dense = dense[0].shape[1]
            content = torch.cat([content, dense[1].to(content.dtype)], dim=1)
            reference = torch.cat([reference, dense[0]], dim=1)
        base = self._with_dense_block(inner, front, num_dense)
        matching = slice(dn_size + group_size, front)
        heads = self.decoder.layers[0].self_attn.num_heads
        class_heads, box_heads = self.decoder_heads()
        distinct_per_layer = [distinct]

        def attn_mask(distinct: torch.Tensor) -> torch.Tensor:
            mask = base.expand(batch, -1, -1).clone()
            mask[:, matching, matching] |= distinct_attn_mask(distinct)
            return mask.repeat_interleave(heads, dim=0)

        def next_attn_mask(layer: int, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
            scores = class_heads[layer](hidden[:, matching]).float().sigmoid().amax(-1)
            still = suppress_duplicates(
                boxes[:, matching], scores, distinct_per_layer[-1], self.decoder_distinct_iou
            )
            distinct_per_layer.append(still)
            return attn_mask(still)

        if num_dense:
            box_heads = [
                _split_head(main, aux, front)
                for main, aux in zip(box_heads, self.dense_box_heads, strict=True)
            ]
        hidden, references = self.decoder(
            content,
            reference,
            token_map,
            memory,
            box_heads,
            self_attn_mask=attn_mask(distinct),
            next_attn_mask=next_attn_mask,
        )
        boxes = [
            (head(h) + inverse_sigmoid(r, self.box_eps)).sigmoid()
            for head, h, r in zip(box_heads, hidden, references[:-1], strict=True)
        ]
        logits = [head(h[:, :front]) for head, h in zip(class_heads, hidden, strict=True)]
        if self.tap is not None:
            grouped = slice(dn_size, dn_size + group_size) if group is not None else None
            self.tap.record(
                token_map, queries, logits, boxes, hidden, matching, grouped, distinct_per_layer
            )
            if not self.training:  # a distillation teacher: the tap is the output
                return []
        if not self.training:
            return self.detections(
                logits[-1][:, matching],
                boxes[-1][:, matching],
                images,
                batched_inputs,
                distinct_per_layer[-1],
            )

        enc_outputs = {
            "pred_logits": enc_logits,
            "pred_boxes": enc_boxes,
            "query_mask": distinct_per_layer[0],
        }
        outputs = self.criterion_outputs(
            logits, boxes, matching, enc_outputs, dn, query_masks=distinct_per_layer
        )
        losses = self.training_losses(outputs, targets, dn)
        losses.update(self.dense_losses(hidden, boxes, dense, front, targets))
        return losses

    def _with_dense_block(self, inner, front: int, num_dense: int) -> torch.Tensor:
        """Self-attention mask bool ``[P, P]`` (True = may not attend) of the ``front``
        queries of ``stack_queries`` (its mask ``inner``; None: all attend to all) followed by
        ``num_dense`` dense queries that attend only to each other, and no one to them."""
        base = torch.zeros(
            front + num_dense, front + num_dense, dtype=torch.bool, device=self.device
        )
        if inner is not None:
            base[:front, :front] = inner
        base[:front, front:] = True
        base[front:, :front] = True
        return base

    def dense_losses(self, hidden, boxes, dense, start, targets) -> dict[str, torch.Tensor]:
        """``loss_dense_{class,giou}_{i}`` per decoder layer (the last without a suffix) and
        ``_enc`` for the dense encoder proposals."""
        stages = [
            (head(h[:, start:]), b[:, start:])
            for head, h, b in zip(self.dense_class_heads, hidden, boxes, strict=True)
        ]
        suffixes = [f"_{i}" for i in range(len(stages) - 1)] + [""]
        stages.append((dense[2], dense[3]))
        suffixes.append("_enc")
        losses = {}
        for (logits, coords), suffix in zip(stages, suffixes, strict=True):
            for name, value in self.dense_loss(logits, coords, targets, dense[4]).items():
                losses[name.replace("loss_", "loss_dense_") + suffix] = value
        return losses
