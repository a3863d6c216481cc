"""Data loaders for COCO 2017 (through ``DETECTRON2_DATASETS``) with DETR's augmentation:
flip, multi-scale resize 480-800 (longest edge at most 1333) or resize-crop-resize.
The shared COCO subsets use the same loaders: set ``dataloader.train.dataset.names`` to
``coco128_train`` or ``coco_tiny_train`` and ``dataloader.test.dataset.names`` to
``coco_tiny_val``."""

from detectron2.config import LazyCall as L
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.evaluation import COCOEvaluator
from omegaconf import OmegaConf

from detr_efficient.data import DetrDatasetMapper

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_train"),
    mapper=L(DetrDatasetMapper)(is_train=True),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_val", filter_empty=False),
    mapper=L(DetrDatasetMapper)(is_train=False),
    num_workers=4,
)

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
