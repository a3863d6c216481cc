"""DDQ R-CNN (Zhang et al., CVPR 2023): DDQ-FCN's distinct queries refined by Sparse R-CNN
stages, with class-agnostic NMS before each stage."""

from __future__ import annotations

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes
from torch import nn

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh

from ..detector import detections_in_original_size, normalized_targets
from .ddq_fcn import DDQFCN, image_scale
from .distinct import distinct_attn_mask, suppress_duplicates
from .rcnn_stage import RefinementStage

__all__ = ["DDQRCNN"]


@META_ARCH_REGISTRY.register()
class DDQRCNN(DDQFCN):
    """DDQ R-CNN, SPEC §5.

    - Queries: DDQ-FCN's distinct queries (its dense head, NMS at ``nms_iou``, the
      ``num_queries`` best); as in DDQ's code, their content is a linear map (``compress``)
      of the head's two tower features at the query's point, detached, and their box the
      head's box, detached.
    - ``num_stages`` ``RefinementStage`` (Sparse R-CNN dynamic interaction with DDQ's query
      distinctness enhancement; RoIAlign ``pooler_resolution``² over the first
      ``pooler_levels`` maps). Before each stage, class-agnostic NMS at ``nms_iou`` over the
      queries still distinct (by their latest scores) marks the duplicates: two suppressed
      queries ignore each other in self-attention, and the stage's loss and the output use
      the distinct ones only.
    - Losses: DDQ-FCN's (``loss_fcn_{class,giou}`` one-to-one and ``loss_aux_*`` one-to-many)
      plus, per stage, ``criterion`` (a ``SetCriterion``: Hungarian, focal / L1 / GIoU) as
      ``loss_{class,bbox,giou}`` (last stage) and ``..._<i>``.
    Other arguments: ``DDQFCN``'s.
    """

    def __init__(
        self,
        *,
        criterion: nn.Module,
        num_stages: int = 2,
        stage_heads: int = 8,
        stage_ffn_dim: int = 2048,
        stage_dropout: float = 0.0,
        pooler_levels: int = 4,
        pooler_resolution: int = 7,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_stages < 1 or not 1 <= pooler_levels <= len(self.head.strides):
            raise ValueError(
                f"DDQRCNN: need num_stages >= 1 and 1 <= pooler_levels <= "
                f"{len(self.head.strides)}, got {num_stages} and {pooler_levels}"
            )
        embed_dim = self.head.predictor.cls_logits.in_channels
        self.stages = nn.ModuleList(
            RefinementStage(
                embed_dim,
                self.num_classes,
                stage_heads,
                stage_ffn_dim,
                stage_dropout,
                pooler_resolution=pooler_resolution,
            )
            for _ in range(num_stages)
        )
        self.compress = nn.Linear(2 * embed_dim, embed_dim)
        self.criterion = criterion
        self.pooler_levels = pooler_levels
        self.pooler = ROIPooler(
            output_size=pooler_resolution,
            scales=[1.0 / s for s in self.head.strides[:pooler_levels]],
            sampling_ratio=2,
            pooler_type="ROIAlignV2",
        )

    def refine(self, q) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per stage (class logits ``[B, Q, K]``, boxes ``[B, Q, 4]`` normalised cxcywh,
        distinct bool ``[B, Q]``) for the distinct queries of ``q`` (``DenseAndDistinct``)."""
        scale = image_scale(q.images, self.device)[:, None]  # [B, 1, 4]
        content, logits = self.compress(q.distinct_content.detach()), q.distinct_logits
        boxes = box_cxcywh_to_xyxy(q.distinct_boxes.detach().float()) * scale
        distinct = q.distinct_valid
        maps = [m.float() for m in q.maps[: self.pooler_levels]]  # see _pool
        outputs = []
        for stage in self.stages:
            scores = logits.detach().float().sigmoid().amax(-1)
            distinct = suppress_duplicates(
                box_xyxy_to_cxcywh(boxes), scores, distinct, self.nms_iou
            )
            rois = self._pool(maps, boxes)
            mask = distinct_attn_mask(distinct)
            mask = mask.repeat_interleave(stage.self_attn.num_heads, dim=0)
            content, logits, boxes = stage(content, rois, boxes, mask)
            outputs.append((logits, box_xyxy_to_cxcywh(boxes / scale), distinct))
            boxes = boxes.detach()
        return outputs

    def _pool(self, maps: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """RoIAlign features ``[B*Q, C, R, R]`` of detached pixel boxes ``[B, Q, 4]`` xyxy
        from fp32 ``maps``, with autocast off: Detectron2's ROIAlign casts the boxes to the
        maps' dtype, which in fp16/bf16 would move a 1000-px box edge by up to 0.5/4 px."""
        with torch.autocast(maps[0].device.type, enabled=False):
            return self.pooler(maps, [Boxes(b) for b in boxes])

    def forward(self, batched_inputs: list[dict]):
        q = self.queries(batched_inputs)
        stages = self.refine(q)
        if not self.training:
            logits, boxes, distinct = stages[-1]
            return detections_in_original_size(
                logits, boxes, q.images, batched_inputs, self.num_detections, distinct
            )
        targets = normalized_targets(batched_inputs, self.num_classes, self.device, self)
        losses = self.dense_losses(q, targets, prefix="loss_fcn_")

        def stage(logits, boxes, distinct) -> dict:
            return {"pred_logits": logits, "pred_boxes": boxes, "query_mask": distinct}

        outputs = stage(*stages[-1])
        outputs["aux_outputs"] = [stage(*s) for s in stages[:-1]]
        losses.update(self.criterion(outputs, targets))
        return losses
