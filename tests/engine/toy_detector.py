"""A tiny detector that follows the model contract, and small shapes datasets, for the
engine tests (imported by ``toy_config.py``; ``tests/engine`` must be on ``sys.path``).

Training: a dict of weighted losses. Evaluation: one box per image in original coordinates.
Dropout makes the loss depend on the torch RNG, so exact resume is a real check.
"""

import detr_efficient  # noqa: F401  (first: its compat fixes must precede any Detectron2 import)

# isort: split

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances
from torch import nn

from detr_efficient.data import cache_dir, register_shapes

NUM_CLASSES = 5
TRAIN_SET, VAL_SET = "engine_toy_train", "engine_toy_val"
POOL = 4


def register_toy_shapes() -> None:
    """``engine_toy_train`` (16 images) and ``engine_toy_val`` (4 images), 96x96, generated on
    first use under ``<cache_dir()>/engine_toy_shapes``."""
    root = cache_dir() / "engine_toy_shapes"
    register_shapes(TRAIN_SET, root, "train", 16, seed=21, image_size=(96, 96), max_objects=3)
    register_shapes(VAL_SET, root, "val", 4, seed=22, image_size=(96, 96), max_objects=3)


class ToyDetector(nn.Module):
    """Pooled pixels → ``backbone`` (linear) → dropout → ``head``: one box and class logits."""

    def __init__(self, hidden: int = 16, dropout: float = 0.5):
        super().__init__()
        self.backbone = nn.Linear(3 * POOL * POOL, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 4 + NUM_CLASSES)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _predict(self, batched_inputs):
        images = [x["image"].to(self.device).float() / 255.0 for x in batched_inputs]
        pooled = torch.stack([F.adaptive_avg_pool2d(im, POOL).flatten() for im in images])
        out = self.head(self.dropout(self.norm(self.backbone(pooled).relu())))
        return out[:, :4].sigmoid(), out[:, 4:]  # normalized cxcywh, class logits

    def forward(self, batched_inputs):
        boxes, logits = self._predict(batched_inputs)
        if self.training:
            return self._losses(batched_inputs, boxes, logits)
        return self._results(batched_inputs, boxes, logits)

    def _losses(self, batched_inputs, boxes, logits):
        targets, classes = [], []
        for x in batched_inputs:
            inst = x["instances"]
            h, w = inst.image_size
            box = inst.gt_boxes.tensor[:1].to(self.device)  # the first object, if any
            if len(box):
                x0, y0, x1, y1 = box[0] / torch.tensor([w, h, w, h], device=self.device)
                targets.append(torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]))
                classes.append(int(inst.gt_classes[0]))
            else:
                targets.append(torch.full((4,), 0.5, device=self.device))
                classes.append(0)
        target = torch.stack(targets)
        labels = torch.tensor(classes, device=self.device)
        return {
            "loss_bbox": 5.0 * F.l1_loss(boxes.float(), target),
            "loss_class": F.cross_entropy(logits.float(), labels),
        }

    def _results(self, batched_inputs, boxes, logits):
        results = []
        for x, box, logit in zip(batched_inputs, boxes.float(), logits.float(), strict=True):
            h, w = x["height"], x["width"]
            cx, cy, bw, bh = box
            xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
            inst = Instances((h, w))
            inst.pred_boxes = Boxes((xyxy * torch.tensor([w, h, w, h], device=box.device))[None])
            probs = logit.softmax(-1)
            inst.scores = probs.max()[None]
            inst.pred_classes = probs.argmax()[None]
            results.append({"instances": inst})
        return results


register_toy_shapes()
