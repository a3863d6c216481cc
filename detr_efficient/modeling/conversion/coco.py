"""COCO class bookkeeping: the official DETR-family checkpoints index their class logits and
label embeddings by the COCO category id (91 slots, ids 1..90 with gaps); Detectron2 uses 80
contiguous classes in increasing id order."""

from __future__ import annotations

import torch

__all__ = ["COCO_CATEGORY_IDS", "class_rows"]

# Detectron2's contiguous class i is COCO category id COCO_CATEGORY_IDS[i].
# fmt: off
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
# fmt: on
COCO_ID_SLOTS = 91  # official heads: one output per id 0..90 (0 and the gaps unused)


def class_rows(num_outputs: int) -> torch.Tensor:
    """Rows of an official class head with ``num_outputs`` outputs to keep, in our class
    order: the 80 COCO ids for a 91-slot COCO head, all rows otherwise (a head trained on
    contiguous labels)."""
    if num_outputs == COCO_ID_SLOTS:
        return torch.tensor(COCO_CATEGORY_IDS)
    return torch.arange(num_outputs)
