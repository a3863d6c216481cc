"""DDQ-FCN (Zhang et al., CVPR 2023): a fully convolutional dense detector whose dense
predictions become distinct queries through class-agnostic NMS before the one-to-one loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList
from torch import nn

from detr_efficient import ops
from detr_efficient.layers.box_ops import box_xyxy_to_cxcywh

from ..detector import (
    PixelNormalizedDetector,
    detections_in_original_size,
    normalized_images,
    normalized_targets,
)
from ..multiscale import level_masks
from .dense_loss import DenseQueryLoss
from .distinct import select_distinct
from .fcn_head import DenseHead

__all__ = ["DDQFCN", "DenseAndDistinct", "image_scale"]


@dataclass
class DenseAndDistinct:
    """One batch through DDQ-FCN's query stage: the ``images`` (``ImageList``), the feature
    ``maps``; the dense queries' ``dense_logits`` ``[B, D, K]``, ``dense_boxes`` ``[B, D, 4]``
    (normalised cxcywh), ``dense_valid`` ``[B, D]`` (in training, those of the head's
    one-to-many predictors where it has them); the distinct ones' ``distinct_logits``,
    ``distinct_boxes``, head features ``distinct_content`` ``[B, Q, 2C]`` (both towers') and
    ``distinct_valid`` (False for padding past an image's NMS survivors)."""

    images: ImageList
    maps: list[torch.Tensor]
    dense_logits: torch.Tensor
    dense_boxes: torch.Tensor
    dense_valid: torch.Tensor
    distinct_logits: torch.Tensor
    distinct_boxes: torch.Tensor
    distinct_content: torch.Tensor
    distinct_valid: torch.Tensor


@META_ARCH_REGISTRY.register()
class DDQFCN(PixelNormalizedDetector):
    """DDQ-FCN, SPEC §5.

    - ``backbone``: a Detectron2 backbone giving the ``in_features`` maps (FPN P3–P7);
      ``head``: ``DenseHead`` → score logits (class × objectness) and a box at every point.
    - Dense queries: the ``candidates_per_level`` best points of each level by their top
      score (points on padding never), over all levels.
    - Distinct queries: class-agnostic NMS at ``nms_iou`` over the dense queries of an image,
      then the ``num_queries`` best survivors; they alone are output.
    - Losses: ``one_to_one_loss`` (a ``DenseQueryLoss`` with ``top_k=1``: Hungarian, QFL
      β=2 + GIoU 2) on the distinct queries (``loss_class``, ``loss_giou``), and the
      training-only ``one_to_many_loss`` (``top_k=8``: each ground-truth box repeated 8 times
      in the assignment) on the dense queries of the head's one-to-many predictors, chosen
      the same way by their own scores (``loss_aux_class``, ``loss_aux_giou``).
    Boxes are handled as cxcywh relative to each valid image, like the DETRs' here.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: DenseHead,
        one_to_one_loss: DenseQueryLoss,
        one_to_many_loss: DenseQueryLoss | None,
        num_classes: int,
        in_features: Sequence[str] = ("p3", "p4", "p5", "p6", "p7"),
        candidates_per_level: int = 1000,
        nms_iou: float = 0.7,
        num_queries: int = 300,
        num_detections: int = 100,
        pixel_mean: Sequence[float] = (123.675, 116.280, 103.530),
        pixel_std: Sequence[float] = (58.395, 57.120, 57.375),
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        if num_classes < 1 or candidates_per_level < 1 or num_queries < 1:
            raise ValueError(
                "DDQFCN: num_classes, candidates_per_level and num_queries must be >= 1, got "
                f"{num_classes}, {candidates_per_level}, {num_queries}"
            )
        if len(in_features) != len(head.strides):
            raise ValueError(
                f"DDQFCN: {len(in_features)} in_features for {len(head.strides)} head strides"
            )
        if one_to_one_loss.top_k != 1:
            raise ValueError(
                f"DDQFCN: the one-to-one loss needs top_k=1, got {one_to_one_loss.top_k}"
            )
        self.backbone = backbone
        self.head = head
        self.one_to_one_loss = one_to_one_loss
        self.one_to_many_loss = one_to_many_loss
        self.num_classes = num_classes
        self.in_features = tuple(in_features)
        self.candidates_per_level = candidates_per_level
        self.nms_iou = nms_iou
        self.num_queries = num_queries
        self.num_detections = num_detections

    def dense_queries(self, maps, images, mask):
        """Dense predictions over the ``maps`` → (the head's ``DenseOutputs`` with boxes as
        normalised cxcywh, valid bool ``[B, S]``, tokens per level)."""
        with_aux = self.training and self.one_to_many_loss is not None
        outputs = self.head(maps, with_aux=with_aux and self.head.aux_predictor is not None)
        shapes = [tuple(m.shape[-2:]) for m in maps]
        valid = ~torch.cat([m.flatten(1) for m in level_masks(mask, shapes)], dim=1)
        scale = image_scale(images, self.device)[:, None]
        outputs.boxes = box_xyxy_to_cxcywh(outputs.boxes) / scale
        if outputs.aux_boxes is not None:
            outputs.aux_boxes = box_xyxy_to_cxcywh(outputs.aux_boxes) / scale
        return outputs, valid, [h * w for h, w in shapes]

    def feature_maps(self, images) -> list[torch.Tensor]:
        """The backbone's ``in_features`` maps ``[B, C, H_l, W_l]``."""
        features = self.backbone(images.tensor)
        missing = [f for f in self.in_features if f not in features]
        if missing:
            raise ValueError(f"DDQFCN: the backbone gives {sorted(features)}, not {missing}")
        return [features[f] for f in self.in_features]

    def select_candidates(self, scores, valid, sizes) -> torch.Tensor:
        """Indices ``[B, D]`` of each level's ``candidates_per_level`` best valid points by
        ``scores`` ``[B, S]``, levels concatenated, -1 where a level has fewer."""
        chosen, start = [], 0
        for level_scores, level_valid in zip(
            scores.split(sizes, dim=1), valid.split(sizes, dim=1), strict=True
        ):
            width = min(self.candidates_per_level, int(level_scores.shape[1]))
            index = ops.select_topk(level_scores, width, valid=level_valid, max_k=width)
            chosen.append(torch.where(index >= 0, index + start, index))
            start += int(level_scores.shape[1])
        return torch.cat(chosen, dim=1)

    def candidates(self, logits, boxes, valid, sizes):
        """Each level's best valid points by top score → (their indices ``[B, D]``, -1 past
        a level's valid points; logits, boxes and scores ``[B, D]`` gathered)."""
        scores = logits.detach().float().sigmoid().amax(-1)
        index = self.select_candidates(scores, valid, sizes)
        picked_logits, picked_boxes, picked_scores = ops.gather_tokens_many(
            [logits, boxes, scores[..., None]], index, check_index=False
        )
        return index, picked_logits, picked_boxes, picked_scores[..., 0]

    def queries(self, batched_inputs: list[dict]) -> DenseAndDistinct:
        """Images, feature maps, dense queries and the distinct ones among them."""
        images, mask = normalized_images(
            batched_inputs, self.pixel_mean, self.pixel_std, self.backbone.size_divisibility
        )
        maps = self.feature_maps(images)
        out, valid, sizes = self.dense_queries(maps, images, mask)
        index, dense_logits, dense_boxes, dense_scores = self.candidates(
            out.logits, out.boxes, valid, sizes
        )
        distinct = select_distinct(
            dense_boxes, dense_scores, index >= 0, self.nms_iou, self.num_queries
        )
        chosen = torch.gather(index, 1, distinct.clamp(min=0))
        chosen = torch.where(distinct >= 0, chosen, distinct)
        picked = ops.gather_tokens_many(
            [out.logits, out.boxes, out.towers], chosen, check_index=False
        )
        if out.aux_logits is not None:  # the one-to-many loss's own dense queries
            index, dense_logits, dense_boxes, _ = self.candidates(
                out.aux_logits, out.aux_boxes, valid, sizes
            )
        return DenseAndDistinct(
            images, maps, dense_logits, dense_boxes, index >= 0, *picked, distinct >= 0
        )

    def forward(self, batched_inputs: list[dict]):
        q = self.queries(batched_inputs)
        if not self.training:
            return detections_in_original_size(
                q.distinct_logits,
                q.distinct_boxes,
                q.images,
                batched_inputs,
                self.num_detections,
                q.distinct_valid,
            )
        targets = normalized_targets(batched_inputs, self.num_classes, self.device, self)
        return self.dense_losses(q, targets)

    def dense_losses(self, q: DenseAndDistinct, targets, prefix: str = "loss_") -> dict:
        """The one-to-one loss on the distinct queries (``<prefix>class``, ``<prefix>giou``)
        and the one-to-many loss on the dense ones (``loss_aux_class``, ``loss_aux_giou``)."""
        one_to_one = self.one_to_one_loss(
            q.distinct_logits, q.distinct_boxes, targets, q.distinct_valid
        )
        losses = {name.replace("loss_", prefix): v for name, v in one_to_one.items()}
        if self.one_to_many_loss is not None:
            aux = self.one_to_many_loss(q.dense_logits, q.dense_boxes, targets, q.dense_valid)
            losses.update({name.replace("loss_", "loss_aux_"): v for name, v in aux.items()})
        return losses


def image_scale(images, device) -> torch.Tensor:
    """``[B, 4]`` (W, H, W, H) of each valid image: normalised boxes × it = pixels."""
    sizes = [[w, h, w, h] for h, w in images.image_sizes]
    return torch.tensor(sizes, dtype=torch.float32, device=device)
