"""Detections from DETR outputs: the top-scoring (query, class) pairs as Detectron2
``Instances`` in original-image coordinates."""

from __future__ import annotations

import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances

from detr_efficient.layers.box_ops import box_cxcywh_normalized_to_xyxy

__all__ = ["select_detections"]


def select_detections(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    image_sizes: list[tuple[int, int]],
    output_sizes: list[tuple[int, int]],
    num_detections: int,
    query_mask: torch.Tensor | None = None,
) -> list[Instances]:
    """pred_logits ``[B, Q, K]`` (sigmoid logits), pred_boxes ``[B, Q, 4]`` (cxcywh relative
    to the valid image), image_sizes: the network input's valid (H, W) per image,
    output_sizes: the (H, W) to report boxes in (the original image) → one ``Instances``
    per image with the best ``num_detections`` (query, class) pairs: ``pred_boxes`` (xyxy),
    ``scores``, ``pred_classes``. A query may appear with several classes. Queries outside
    ``query_mask`` bool ``[B, Q]``, when given, are never output: an image with fewer than
    ``num_detections`` pairs of its own gets fewer."""
    batch, queries, classes = pred_logits.shape
    scores = pred_logits.float().sigmoid()
    if query_mask is not None:
        scores = scores.masked_fill(~query_mask[..., None], -1.0)  # below every sigmoid
    scores = scores.flatten(1)
    top = min(num_detections, queries * classes)
    scores, index = scores.topk(top, dim=1)
    query_index = torch.div(index, classes, rounding_mode="floor")
    labels = index % classes
    boxes = torch.gather(pred_boxes.float(), 1, query_index[..., None].expand(-1, -1, 4))
    results = []
    for i in range(batch):
        instances = Instances(image_sizes[i])
        instances.pred_boxes = Boxes(box_cxcywh_normalized_to_xyxy(boxes[i], image_sizes[i]))
        instances.scores = scores[i]
        instances.pred_classes = labels[i]
        if query_mask is not None:
            instances = instances[scores[i] >= 0]
        results.append(detector_postprocess(instances, *output_sizes[i]))
    return results
