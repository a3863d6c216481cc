"""Data loaders for the synthetic shapes dataset (256x256 images): DETR augmentation scaled
to the small images, COCO evaluation on ``shapes_val``."""

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
    dataset=L(get_detection_dataset_dicts)(names="shapes_train"),
    mapper=L(DetrDatasetMapper)(
        is_train=True,
        min_sizes=(192, 208, 224, 240, 256, 272, 288),
        max_size=480,
        crop_resize_sizes=(160, 192, 224),
        crop_size=(128, 224),
    ),
    total_batch_size=8,
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="shapes_val", filter_empty=False),
    mapper=L(DetrDatasetMapper)(is_train=False, eval_min_size=256, eval_max_size=480),
    num_workers=2,
)

dataloader.evaluator = L(COCOEvaluator)(dataset_name="${..test.dataset.names}")
