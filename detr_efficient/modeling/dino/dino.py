"""DINO (Zhang et al., 2022): Deformable DETR two-stage with contrastive denoising, mixed
query selection and look-forward-twice."""

from __future__ import annotations

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from detr_efficient import ops
from detr_efficient.layers.box_ops import inverse_sigmoid

from ..denoising import ContrastiveDenoising, denoising_attn_mask
from ..detector import DeformableDetectorBase
from ..heads import box_head, class_head, reset_transformer_parameters
from ..tap import QueryGroup, isolated_group_mask

__all__ = ["DINO"]


@META_ARCH_REGISTRY.register()
class DINO(DeformableDetectorBase):
    """DINO 4-scale.

    - Two-stage: every encoder token proposes a box (``proposals``, ``enc_class_head``,
      ``enc_box_head``); the ``num_queries`` best by their top class score become the
      decoder's reference boxes (detached).
    - Mixed query selection: the queries' content is the learned ``query_content``, not the
      selected tokens.
    - Contrastive denoising (training): ``denoising`` builds noised ground-truth queries that
      run in front of the matching queries, masked off from them.
    - Look-forward-twice and query positions from boxes: see ``DeformableTransformerDecoder``
      (built with ``query_pos_from_boxes=True, look_forward_twice=True, final_norm=True``).
    - The class and box heads are shared by all decoder layers (official DINO); with
      ``share_heads=False`` each layer has its own (``class_heads``/``box_heads``, as in
      detrex).
    - ``box_eps``: the clamp of ``inverse_sigmoid`` on the references of the predicted boxes
      (DINO's code: 1e-3, mmdetection's DDQ-DETR head: 1e-5).
    - ``encoder_loss_on``: which proposals the encoder loss matches and classifies.
      ``"selected"`` (DINO's code): the ``num_queries`` selected ones. ``"all"``: every valid
      proposal, as Deformable DETR's two-stage loss; a denser signal for the encoder and the
      backbone, which helps training from scratch (BENCHMARKS.md, eighth session).

    ``forward`` returns the weighted loss dict in training and ``[{"instances"}]`` in eval.
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
        denoising: ContrastiveDenoising | None,
        num_classes: int = 80,
        num_queries: int = 900,
        embed_dim: int = 256,
        num_feature_levels: int = 4,
        num_detections: int = 300,
        share_heads: bool = True,
        box_eps: float = 1e-5,
        encoder_loss_on: str = "selected",
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
        self.denoising = denoising
        self.enc_class_head = class_head(embed_dim, num_classes)
        self.enc_box_head = box_head(embed_dim)
        self.query_content = nn.Embedding(num_queries, embed_dim)
        layers = len(decoder.layers)
        if share_heads:
            self.class_head = class_head(embed_dim, num_classes)
            self.box_head = box_head(embed_dim)
        else:
            self.class_heads = nn.ModuleList(
                class_head(embed_dim, num_classes) for _ in range(layers)
            )
            self.box_heads = nn.ModuleList(box_head(embed_dim) for _ in range(layers))
        self.share_heads = share_heads
        self.box_eps = float(box_eps)
        if encoder_loss_on not in ("selected", "all"):
            raise ValueError(
                f"{type(self).__name__}: 'encoder_loss_on' must be 'selected' or 'all', "
                f"got {encoder_loss_on!r}"
            )
        self.encoder_loss_on = encoder_loss_on
        reset_transformer_parameters(self.encoder, self.decoder, self.proposals)

    def decoder_heads(self) -> tuple[list[nn.Module], list[nn.Module]]:
        """The class and box head of each decoder layer."""
        if self.share_heads:
            layers = len(self.decoder.layers)
            return [self.class_head] * layers, [self.box_head] * layers
        return list(self.class_heads), list(self.box_heads)

    def select_queries(self, token_map, memory) -> tuple[torch.Tensor, dict]:
        """Two-stage selection → (reference boxes ``[B, K, 4]`` detached, the encoder outputs
        for the loss: ``pred_logits`` ``[B, N, C]`` and ``pred_boxes`` ``[B, N, 4]`` of the
        selected tokens (N = K), or of every token with the valid ones as ``query_mask``
        (N = S, ``encoder_loss_on="all"``))."""
        output_memory, proposals, valid = self.propose(token_map, memory)
        enc_logits = self.enc_class_head(output_memory)
        enc_coords = self.enc_box_head(output_memory) + proposals  # [B, S, 4] unnormalised
        index = self.select_proposals(enc_logits.amax(-1), valid)
        if self.encoder_loss_on == "all":
            coords = ops.gather_tokens(enc_coords, index, check_index=False)
            enc_outputs = {
                "pred_logits": enc_logits,
                "pred_boxes": enc_coords.sigmoid(),
                "query_mask": valid,
            }
            return coords.detach().sigmoid(), enc_outputs
        logits, coords = ops.gather_tokens_many([enc_logits, enc_coords], index, check_index=False)
        return coords.detach().sigmoid(), {"pred_logits": logits, "pred_boxes": coords.sigmoid()}

    def forward(self, batched_inputs: list[dict]):
        images, token_map, memory = self.encode(batched_inputs)
        targets = self.prepare_targets(batched_inputs) if self.training else None
        return self.decode(images, token_map, memory, batched_inputs, targets)

    def decode(self, images, token_map, memory, batched_inputs, targets):
        """Query selection, denoising, the decoder and the heads over an encoded batch →
        the weighted loss dict (training, with ``targets``) or ``[{"instances"}]``. Queries
        run in the order denoising, the tap's group (see ``tapped``), matching."""
        reference, enc_outputs = self.select_queries(token_map, memory)
        batch, width = reference.shape[:2]
        content = self.query_content.weight[:width][None].expand(batch, -1, -1)
        queries = QueryGroup(content, reference)
        group = self.tap.group if self.tap is not None else None

        dn = self.denoising(targets) if self.training and self.denoising is not None else None
        stacked, attn_mask, dn_size, group_size = self.stack_queries(queries, dn, group)

        class_heads, box_heads = self.decoder_heads()
        hidden, references = self.decoder(
            stacked.content,
            stacked.reference,
            token_map,
            memory,
            box_heads,
            self_attn_mask=attn_mask,
        )
        logits = [head(h) for head, h in zip(class_heads, hidden, strict=True)]
        boxes = [
            (head(h) + inverse_sigmoid(r, self.box_eps)).sigmoid()
            for head, h, r in zip(box_heads, hidden, references[:-1], strict=True)
        ]
        matching = slice(dn_size + group_size, None)
        if self.tap is not None:
            grouped = slice(dn_size, dn_size + group_size) if group is not None else None
            self.tap.record(token_map, queries, logits, boxes, hidden, matching, grouped)
            if not self.training:  # a distillation teacher: the tap is the output
                return []
        if not self.training:
            return self.detections(
                logits[-1][:, matching], boxes[-1][:, matching], images, batched_inputs
            )

        outputs = self.criterion_outputs(logits, boxes, matching, enc_outputs, dn)
        return self.training_losses(outputs, targets, dn)

    def stack_queries(self, queries: QueryGroup, dn, group: QueryGroup | None):
        """The decoder input in the order denoising (``dn``), ``group`` (the tap's), ``queries``
        (matching) → (their concatenation ``[B, P, *]`` in the queries' dtype, the
        self-attention mask bool ``[P, P]`` (True = may not attend; None: all attend to all)
        of DINO's denoising groups and the isolated group, the denoising and group sizes)."""
        batch, width = queries.reference.shape[:2]
        parts, attn_mask, dn_size, group_size = [queries], None, 0, 0
        if group is not None:
            group.check(batch, self.embed_dim, type(self).__name__)
            parts.insert(0, group)
            group_size = group.content.shape[1]
        if dn is not None:
            dn_size = dn.content.shape[1]
            parts.insert(0, QueryGroup(dn.content, dn.boxes.sigmoid()))
            attn_mask = denoising_attn_mask(
                dn.meta["num_groups"], dn.meta["group_size"], width, self.device
            )
        if group is not None:
            total = dn_size + group_size + width
            attn_mask = isolated_group_mask(attn_mask, dn_size, group_size, total, self.device)
        dtype = queries.content.dtype
        stacked = QueryGroup(
            torch.cat([part.content.to(dtype) for part in parts], dim=1),
            torch.cat([part.reference for part in parts], dim=1),
        )
        return stacked, attn_mask, dn_size, group_size

    def training_losses(self, outputs: dict, targets: list[dict], dn) -> dict[str, torch.Tensor]:
        """The criterion's losses; for a batch without any ground truth (no ``dn``), zero
        ``loss_{class,bbox,giou}_dn[_i]`` tied to the label embedding, so every process logs
        the same losses and, under DDP, uses every parameter (DINO's code adds
        ``label_enc.weight[0, 0] * 0``)."""
        losses = self.criterion(outputs, targets)
        if dn is not None or self.denoising is None:
            return losses
        zero = self.denoising.label_embed.weight.sum() * 0.0
        suffixes = ["_dn"] + [f"_dn_{i}" for i in range(len(self.decoder.layers) - 1)]
        losses.update(
            {f"loss_{name}{s}": zero for name in ("class", "bbox", "giou") for s in suffixes}
        )
        return losses

    @staticmethod
    def criterion_outputs(logits, boxes, matching, enc_outputs, dn, query_masks=None) -> dict:
        """``SetCriterion``'s ``outputs`` from the per-layer logits and boxes ``[B, P + Q...,
        *]`` (P denoising queries first): the ``matching`` slice for every layer (with
        ``query_masks[i]`` as layer i's ``query_mask`` when given), ``enc_outputs`` and, with
        ``dn``, the denoising part."""

        def stage(i: int, part: slice, masks=None) -> dict:
            out = {"pred_logits": logits[i][:, part], "pred_boxes": boxes[i][:, part]}
            return out if masks is None else {**out, "query_mask": masks[i]}

        layers = len(logits)
        outputs = stage(layers - 1, matching, query_masks)
        outputs["aux_outputs"] = [stage(i, matching, query_masks) for i in range(layers - 1)]
        outputs["enc_outputs"] = enc_outputs
        if dn is not None:
            denoising = slice(0, dn.content.shape[1])
            outputs["dn_outputs"] = stage(layers - 1, denoising)
            outputs["dn_outputs"]["aux_outputs"] = [stage(i, denoising) for i in range(layers - 1)]
            outputs["dn_outputs"]["dn_meta"] = dn.meta
        return outputs
