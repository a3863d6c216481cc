"""Data layer: synthetic shapes generator, checked COCO loading and dataset registration,
the DETR dataset mapper, box conversions and a dataset visualiser.

Importing this package registers ``shapes_train``, ``shapes_val``, ``coco_tiny_train``,
``coco_tiny_val`` and ``coco128_train`` (see ``datasets``).
"""

from .box_ops import (
    box_cxcywh_normalized_to_xyxy,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_cxcywh_normalized,
)
from .coco_loader import DatasetError, load_coco_json_checked
from .datasets import COCO_SUBSETS, SHAPES_SPLITS, register_all, register_coco, register_shapes
from .mapper import DetrDatasetMapper
from .paths import cache_dir, data_root
from .shapes import CLASS_NAMES, generate_shapes
from .transforms import build_detr_train_augmentation
from .visualize import draw_dataset_grid

__all__ = [
    "CLASS_NAMES",
    "COCO_SUBSETS",
    "SHAPES_SPLITS",
    "DatasetError",
    "DetrDatasetMapper",
    "box_cxcywh_normalized_to_xyxy",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_xyxy_to_cxcywh_normalized",
    "build_detr_train_augmentation",
    "cache_dir",
    "data_root",
    "draw_dataset_grid",
    "generate_shapes",
    "load_coco_json_checked",
    "register_all",
    "register_coco",
    "register_shapes",
]

register_all()
