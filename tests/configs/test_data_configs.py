"""configs/common/data: the LazyConfigs load, accept overrides and build working loaders."""

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.data import register_shapes

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "common" / "data"


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    register_shapes("config_test_shapes_train", root, "train", num_images=6, seed=3)
    register_shapes("config_test_shapes_val", root, "val", num_images=3, seed=4)
    return "config_test_shapes_train", "config_test_shapes_val"


def test_shapes_loaders_yield_detr_batches(tiny_shapes, tmp_path):
    train_name, val_name = tiny_shapes
    cfg = LazyConfig.load(str(CONFIGS / "shapes.py"))
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            f"dataloader.train.dataset.names={train_name}",
            f"dataloader.test.dataset.names={val_name}",
            "dataloader.train.total_batch_size=2",
            "dataloader.train.num_workers=0",
            "dataloader.test.num_workers=0",
            f"dataloader.evaluator.output_dir={tmp_path}",
        ],
    )
    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 2
    for sample in batch:
        image, instances = sample["image"], sample["instances"]
        assert image.dtype == torch.uint8 and image.shape[0] == 3
        assert max(image.shape[1:]) <= 480
        assert instances.image_size == tuple(image.shape[1:])
        assert len(instances) == len(instances.gt_classes)

    test_batch = next(iter(instantiate(cfg.dataloader.test)))
    assert min(test_batch[0]["image"].shape[1:]) == 256
    evaluator = instantiate(cfg.dataloader.evaluator)
    assert evaluator._metadata.name == val_name


def test_coco_config_points_at_coco_and_subsets_override(shared_data):
    cfg = LazyConfig.load(str(CONFIGS / "coco.py"))
    assert cfg.dataloader.train.dataset.names == "coco_2017_train"
    assert cfg.dataloader.train.mapper.is_train is True
    cfg = LazyConfig.apply_overrides(
        cfg, ["dataloader.test.dataset.names=coco_tiny_val", "dataloader.test.num_workers=0"]
    )
    batch = next(iter(instantiate(cfg.dataloader.test)))
    image = batch[0]["image"]
    assert min(image.shape[1:]) == 800 or max(image.shape[1:]) == 1333
