"""Data loaders for the synthetic shapes dataset (256x256 images): the COCO loaders with
DETR's augmentation scaled to the small images, evaluated on ``shapes_val``."""

from detectron2.config import LazyCall as L

from detr_efficient.data import DetrDatasetMapper

from .coco import dataloader

dataloader.train.dataset.names = "shapes_train"
dataloader.train.mapper = L(DetrDatasetMapper)(
    is_train=True,
    min_sizes=(192, 208, 224, 240, 256, 272, 288),
    max_size=480,
    crop_resize_sizes=(160, 192, 224),
    crop_size=(128, 224),
)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 2

dataloader.test.dataset.names = "shapes_val"
dataloader.test.mapper = L(DetrDatasetMapper)(is_train=False, eval_min_size=256, eval_max_size=480)
dataloader.test.num_workers = 2
