"""``DetrDatasetMapper``: Detectron2 dataset dict → model input dict, with DETR augmentation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances

from .coco_loader import DatasetError
from .transforms import build_detr_train_augmentation

__all__ = ["DetrDatasetMapper"]

logger = logging.getLogger(__name__)


class DetrDatasetMapper:
    """Callable: dataset dict → dict with

    - ``image``: uint8 tensor (3, H', W') of the augmented image (channels in ``image_format``),
    - ``height``/``width``: size of the original image,
    - ``instances`` (training only): ``Instances`` of size (H', W') with ``gt_boxes``
      (``Boxes``, absolute XYXY in the augmented image, clipped, non-empty) and ``gt_classes``
      (int64 (N,)); crowd boxes are removed,

    plus the other keys of the input dict except ``annotations``. The input is not modified.
    Training: see ``build_detr_train_augmentation``. Evaluation: one resize of the shortest
    edge to ``eval_min_size`` with the longest edge at most ``eval_max_size``.
    Random draws use NumPy's global generator (seeded per worker by Detectron2).
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        min_sizes: Sequence[int] = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
        max_size: int = 1333,
        crop_resize_sizes: Sequence[int] = (400, 500, 600),
        crop_size: tuple[int, int] = (384, 600),
        flip_prob: float = 0.5,
        crop_prob: float = 0.5,
        eval_min_size: int = 800,
        eval_max_size: int = 1333,
        image_format: str = "RGB",
    ):
        self.is_train = is_train
        self.image_format = image_format
        if is_train:
            self.augmentation = build_detr_train_augmentation(
                min_sizes, max_size, crop_resize_sizes, crop_size, flip_prob, crop_prob
            )
        else:
            self.augmentation = T.AugmentationList(
                [T.ResizeShortestEdge(eval_min_size, eval_max_size)]
            )
        mode = "training" if is_train else "inference"
        logger.info("DetrDatasetMapper (%s): %s", mode, self.augmentation)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> dict:
        """Standard ``cfg.INPUT`` keys (``MIN_SIZE_TRAIN_SAMPLING`` must be "choice"). The crop
        branch runs with p=0.5 when ``INPUT.CROP.ENABLED`` (``CROP.TYPE`` must then be
        "absolute_range", ``CROP.SIZE`` = (min, max)); its pre-crop shortest edges come from
        the optional key ``INPUT.CROP.RESIZE_SIZES`` (default 400, 500, 600)."""
        inp, crop = cfg.INPUT, cfg.INPUT.CROP
        if inp.MIN_SIZE_TRAIN_SAMPLING != "choice":
            raise ValueError("DetrDatasetMapper needs INPUT.MIN_SIZE_TRAIN_SAMPLING='choice'")
        if crop.ENABLED and crop.TYPE != "absolute_range":
            raise ValueError("DetrDatasetMapper needs INPUT.CROP.TYPE='absolute_range'")
        return {
            "is_train": is_train,
            "min_sizes": tuple(inp.MIN_SIZE_TRAIN),
            "max_size": inp.MAX_SIZE_TRAIN,
            "crop_resize_sizes": tuple(crop.get("RESIZE_SIZES", (400, 500, 600))),
            "crop_size": tuple(crop.SIZE),
            "flip_prob": 0.5 if inp.RANDOM_FLIP == "horizontal" else 0.0,
            "crop_prob": 0.5 if crop.ENABLED else 0.0,
            "eval_min_size": inp.MIN_SIZE_TEST,
            "eval_max_size": inp.MAX_SIZE_TEST,
            "image_format": inp.FORMAT,
        }

    def _read(self, dataset_dict: dict) -> np.ndarray:
        """(H, W, 3) uint8 image; checks (or fills in) ``height``/``width`` of the dict."""
        file_name = dataset_dict["file_name"]
        try:
            image = utils.read_image(file_name, format=self.image_format)
        except OSError as e:  # missing, unreadable or truncated file
            raise DatasetError(f"{file_name}: cannot read image: {e}") from e
        utils.check_image_size(dataset_dict, image)
        return image

    def _instances(self, annotations: list[dict], transforms, image_size) -> Instances:
        """Non-crowd boxes → ``transforms`` → clipped to ``image_size`` (H, W) → non-empty."""
        annotations = [a for a in annotations if not a.get("iscrowd", 0)]
        boxes = np.array(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
            dtype=np.float32,
        ).reshape(-1, 4)
        classes = np.array([a["category_id"] for a in annotations], dtype=np.int64)
        if len(boxes):
            boxes = transforms.apply_box(boxes).astype(np.float32)
        h, w = image_size
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        instances = Instances(image_size)
        instances.gt_boxes = Boxes(torch.from_numpy(boxes[keep]))
        instances.gt_classes = torch.from_numpy(classes[keep])
        return instances

    def __call__(self, dataset_dict: dict) -> dict:
        out = {k: v for k, v in dataset_dict.items() if k != "annotations"}
        image = self._read(out)
        aug_input = T.AugInput(image)
        transforms = self.augmentation(aug_input)
        image = aug_input.image
        out["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.is_train:
            annotations = dataset_dict.get("annotations", [])
            out["instances"] = self._instances(annotations, transforms, image.shape[:2])
        return out
