"""DETR/DINO-style augmentation pipelines built from Detectron2 augmentations."""

from __future__ import annotations

from collections.abc import Sequence

from detectron2.data import transforms as T

__all__ = ["RandomSelect", "build_detr_train_augmentation"]


class RandomSelect(T.Augmentation):
    """Apply ``first`` with probability ``prob``, else ``second`` (both Augmentations)."""

    def __init__(self, first: T.Augmentation, second: T.Augmentation, prob: float = 0.5):
        super().__init__()
        self.first, self.second, self.prob = first, second, prob

    def __call__(self, aug_input) -> T.Transform:
        chosen = self.first if self._rand_range() < self.prob else self.second
        return chosen(aug_input)


def build_detr_train_augmentation(
    min_sizes: Sequence[int],
    max_size: int,
    crop_resize_sizes: Sequence[int],
    crop_size: tuple[int, int],
    flip_prob: float = 0.5,
    crop_prob: float = 0.5,
) -> T.AugmentationList:
    """Random horizontal flip, then with ``crop_prob``: resize the shortest edge to one of
    ``crop_resize_sizes`` → random crop of absolute size in ``crop_size`` (min, max) →
    multi-scale resize; otherwise just the multi-scale resize (shortest edge one of
    ``min_sizes``, longest edge at most ``max_size``)."""
    multi_scale = T.ResizeShortestEdge(tuple(min_sizes), max_size, sample_style="choice")
    crop = T.AugmentationList(
        [
            T.ResizeShortestEdge(tuple(crop_resize_sizes), sample_style="choice"),
            T.RandomCrop("absolute_range", tuple(crop_size)),
            multi_scale,
        ]
    )
    return T.AugmentationList(
        [
            T.RandomFlip(prob=flip_prob, horizontal=True, vertical=False),
            RandomSelect(crop, multi_scale, crop_prob),
        ]
    )
