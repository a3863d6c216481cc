"""Deformable DETR (Zhu et al., 2021) with iterative box refinement and two-stage."""

from __future__ import annotations

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from detr_efficient import ops
from detr_efficient.layers import sine_embed_coords
from detr_efficient.layers.box_ops import inverse_sigmoid

from ..detector import DeformableDetectorBase
from ..heads import box_head, class_head, reset_transformer_parameters
from ..tap import QueryGroup, isolated_group_mask

__all__ = ["DeformableDETR"]


@META_ARCH_REGISTRY.register()
class DeformableDETR(DeformableDetectorBase):
    """Deformable DETR, two-stage with iterative box refinement.

    One class and box head per decoder layer plus one for the encoder proposals (the last
    of ``class_heads`` / ``box_heads``). The ``num_queries`` proposals with the highest
    first-class logit become the reference boxes; their sine embedding, projected
    (``query_proj`` + ``query_norm``), is split into the query position and content. The
    encoder loss is class-agnostic (criterion built with ``encoder_binary_class=True``) over
    all proposals, as in the official code.
    """

    supports_tap = True

    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck: nn.Module,
        position_embedding: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        criterion: nn.Module,
        num_classes: int = 80,
        num_queries: int = 300,
        embed_dim: int = 256,
        num_feature_levels: int = 4,
        num_detections: int = 100,
        **kwargs,
    ) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            position_embedding=position_embedding,
            encoder=encoder,
            decoder=decoder,
            criterion=criterion,
            num_classes=num_classes,
            num_queries=num_queries,
            embed_dim=embed_dim,
            num_feature_levels=num_feature_levels,
            num_detections=num_detections,
            **kwargs,
        )
        stages = len(decoder.layers) + 1
        self.class_heads = nn.ModuleList(class_head(embed_dim, num_classes) for _ in range(stages))
        self.box_heads = nn.ModuleList(box_head(embed_dim) for _ in range(stages))
        self.query_proj = nn.Linear(2 * embed_dim, 2 * embed_dim)
        self.query_norm = nn.LayerNorm(2 * embed_dim)
        reset_transformer_parameters(self.encoder, self.decoder, self.proposals, self.query_proj)

    def query_embedding(self, reference: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference boxes ``[B, Q, 4]`` → (query position, content), each ``[B, Q, C]``
        (the sine embedding is cast to ``dtype`` before the projection)."""
        embedding = sine_embed_coords(reference, self.embed_dim // 2, exchange_xy=False)
        embedding = self.query_norm(self.query_proj(embedding.to(dtype)))
        return embedding.split(self.embed_dim, dim=-1)

    def forward(self, batched_inputs: list[dict]):
        images, token_map, memory = self.encode(batched_inputs)
        output_memory, proposals, valid = self.propose(token_map, memory)
        enc_logits = self.class_heads[-1](output_memory)
        enc_coords = self.box_heads[-1](output_memory) + proposals
        index = self.select_proposals(enc_logits[..., 0], valid)
        reference = ops.gather_tokens(enc_coords.detach(), index, check_index=False).sigmoid()
        query_pos, content = self.query_embedding(reference, memory.dtype)
        queries = QueryGroup(content, reference)

        group = self.tap.group if self.tap is not None else None
        group_size, attn_mask = 0, None
        if group is not None:  # in front of the matching queries, isolated from them
            group.check(reference.shape[0], self.embed_dim, type(self).__name__)
            group_size = group.content.shape[1]
            group_pos = self.query_embedding(group.reference, memory.dtype)[0]
            query_pos = torch.cat([group_pos, query_pos], dim=1)
            content = torch.cat([group.content.to(content.dtype), content], dim=1)
            reference = torch.cat([group.reference, reference], dim=1)
            total = reference.shape[1]
            attn_mask = isolated_group_mask(None, 0, group_size, total, self.device)

        layers = len(self.decoder.layers)
        hidden, references = self.decoder(
            content,
            reference,
            token_map,
            memory,
            list(self.box_heads[:layers]),
            query_pos=query_pos,
            self_attn_mask=attn_mask,
        )
        logits = [self.class_heads[i](h) for i, h in enumerate(hidden)]
        boxes = [
            (self.box_heads[i](h) + inverse_sigmoid(references[i])).sigmoid()
            for i, h in enumerate(hidden)
        ]
        matching = slice(group_size, None)
        if self.tap is not None:
            grouped = slice(0, group_size) if group is not None else None
            self.tap.record(token_map, queries, logits, boxes, hidden, matching, grouped)
            if not self.training:  # a distillation teacher: the tap is the output
                return []
        logits = [x[:, matching] for x in logits]
        boxes = [x[:, matching] for x in boxes]
        if not self.training:
            return self.detections(logits[-1], boxes[-1], images, batched_inputs)

        outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        outputs["aux_outputs"] = [
            {"pred_logits": logits[i], "pred_boxes": boxes[i]} for i in range(layers - 1)
        ]
        outputs["enc_outputs"] = {"pred_logits": enc_logits, "pred_boxes": enc_coords.sigmoid()}
        return self.criterion(outputs, self.prepare_targets(batched_inputs))
