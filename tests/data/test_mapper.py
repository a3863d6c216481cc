"""DetrDatasetMapper on real COCO JPEGs and on hand-checked synthetic images."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.env import seed_all_rng
from PIL import Image

from detr_efficient.data import DatasetError, DetrDatasetMapper

SMALL = {
    "min_sizes": (288, 320, 352),
    "max_size": 400,
    "crop_resize_sizes": (200, 250, 300),
    "crop_size": (192, 300),
}


@pytest.fixture(scope="module")
def coco_val(shared_data):
    return DatasetCatalog.get("coco_tiny_val")


def _xyxy(ann) -> list[float]:
    return BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS)


def _check_train_output(out, record, max_size):
    image = out["image"]
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    h, w = image.shape[1:]
    assert max(h, w) <= max_size
    assert (out["height"], out["width"]) == (record["height"], record["width"])
    assert out["image_id"] == record["image_id"] and "annotations" not in out
    inst = out["instances"]
    assert isinstance(inst, Instances) and inst.image_size == (h, w)
    assert isinstance(inst.gt_boxes, Boxes) and inst.gt_boxes.tensor.dtype == torch.float32
    assert inst.gt_classes.dtype == torch.int64
    boxes = inst.gt_boxes.tensor
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    non_crowd = [a for a in record["annotations"] if not a["iscrowd"]]
    assert len(inst) <= len(non_crowd)
    assert set(inst.gt_classes.tolist()) <= {a["category_id"] for a in non_crowd}
    return h, w


def test_train_mapper_on_real_images(coco_val):
    mapper = DetrDatasetMapper(is_train=True, **SMALL)
    seed_all_rng(0)
    short_sides = set()
    for record in coco_val[:12]:
        before = copy.deepcopy(record)
        for _ in range(3):
            h, w = _check_train_output(mapper(record), record, SMALL["max_size"])
            assert min(h, w) in SMALL["min_sizes"] or max(h, w) == SMALL["max_size"]
            short_sides.add(min(h, w))
        assert record == before  # the input dict is not modified
    assert len(short_sides) > 1  # multi-scale


def test_train_mapper_default_sizes(coco_val):
    mapper = DetrDatasetMapper(is_train=True)
    seed_all_rng(1)
    for record in coco_val[:3]:
        h, w = _check_train_output(mapper(record), record, 1333)
        assert 480 <= min(h, w) <= 800


def test_crowd_boxes_are_removed_in_training(coco_val):
    record = next(r for r in coco_val if any(a["iscrowd"] for a in r["annotations"]))
    mapper = DetrDatasetMapper(is_train=True, flip_prob=0.0, crop_prob=0.0, **SMALL)
    non_crowd = [a for a in record["annotations"] if not a["iscrowd"]]
    out = mapper(record)
    # no crop: every non-crowd box survives, in order, and nothing else
    assert out["instances"].gt_classes.tolist() == [a["category_id"] for a in non_crowd]


def test_eval_mapper_single_resize(coco_val):
    mapper = DetrDatasetMapper(is_train=False, eval_min_size=320, eval_max_size=450)
    for record in coco_val[:6]:
        h, w = record["height"], record["width"]
        scale = 320 / min(h, w)
        if max(h, w) * scale > 450:
            scale = 450 / max(h, w)
        expected = (int(h * scale + 0.5), int(w * scale + 0.5))
        out = mapper(record)
        assert tuple(out["image"].shape) == (3, *expected)
        assert "instances" not in out and "annotations" not in out
        assert (out["height"], out["width"]) == (h, w)


def test_horizontal_flip_by_hand(coco_val):
    record = coco_val[0]
    h, w = record["height"], record["width"]
    mapper = DetrDatasetMapper(
        is_train=True, flip_prob=1.0, crop_prob=0.0, min_sizes=(min(h, w),), max_size=10_000
    )
    out = mapper(record)
    with Image.open(record["file_name"]) as f:
        original = np.asarray(f.convert("RGB"))
    assert torch.equal(out["image"], torch.from_numpy(original[:, ::-1].transpose(2, 0, 1).copy()))
    expected = [
        [w - x1, y0, w - x0, y1]
        for x0, y0, x1, y1 in (_xyxy(a) for a in record["annotations"] if not a["iscrowd"])
    ]
    assert torch.allclose(out["instances"].gt_boxes.tensor, torch.tensor(expected), atol=1e-3)


@pytest.fixture
def ramp_record(tmp_path):
    """A 160x200 PNG whose pixel (y, x) is (x, y, 0), with hand-placed boxes."""
    yy, xx = np.mgrid[0:160, 0:200]
    image = np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.uint8)
    path = tmp_path / "ramp.png"
    Image.fromarray(image).save(path)
    boxes = [[5, 5, 30, 30], [150, 120, 40, 30], [80, 60, 40, 40], [0, 100, 200, 10], [95, 0, 2, 5]]
    anns = [
        {"bbox": b, "bbox_mode": BoxMode.XYWH_ABS, "category_id": i} for i, b in enumerate(boxes)
    ]
    anns.append(
        {"bbox": [0, 0, 200, 160], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 9, "iscrowd": 1}
    )
    return {"file_name": str(path), "height": 160, "width": 200, "image_id": 1, "annotations": anns}


def test_crop_keeps_and_clips_only_remaining_boxes(ramp_record):
    # identity resizes around a fixed-size 100x100 crop at a random offset
    mapper = DetrDatasetMapper(
        is_train=True,
        flip_prob=0.0,
        crop_prob=1.0,
        crop_resize_sizes=(160,),
        crop_size=(100, 100),
        min_sizes=(100,),
        max_size=1000,
    )
    dropped = clipped = 0
    for seed in range(12):
        seed_all_rng(seed)
        out = mapper(ramp_record)
        image = out["image"]
        assert tuple(image.shape) == (3, 100, 100)
        x_off, y_off = int(image[0, 0, 0]), int(image[1, 0, 0])  # read from the ramp
        expected_boxes, expected_classes = [], []
        for ann in ramp_record["annotations"]:
            if ann.get("iscrowd"):
                continue
            x0, y0, x1, y1 = _xyxy(ann)
            box = [
                min(max(x0 - x_off, 0), 100),
                min(max(y0 - y_off, 0), 100),
                min(max(x1 - x_off, 0), 100),
                min(max(y1 - y_off, 0), 100),
            ]
            if box[2] > box[0] and box[3] > box[1]:
                expected_boxes.append(box)
                expected_classes.append(ann["category_id"])
                clipped += box != [x0 - x_off, y0 - y_off, x1 - x_off, y1 - y_off]
            else:
                dropped += 1
        inst = out["instances"]
        assert inst.gt_classes.tolist() == expected_classes
        assert torch.allclose(
            inst.gt_boxes.tensor,
            torch.tensor(expected_boxes, dtype=torch.float32).reshape(-1, 4),
            atol=1e-4,
        )
    assert dropped > 0 and clipped > 0  # both cases were exercised


def test_unreadable_images_name_the_file(tmp_path):
    mapper = DetrDatasetMapper(is_train=False, eval_min_size=32, eval_max_size=64)
    missing = tmp_path / "missing.jpg"
    with pytest.raises(DatasetError, match="missing.jpg: cannot read image"):
        mapper({"file_name": str(missing), "height": 10, "width": 10, "image_id": 1})
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DatasetError, match="corrupt.jpg: cannot read image"):
        mapper({"file_name": str(corrupt), "height": 10, "width": 10, "image_id": 1})


def test_from_config(ramp_record):
    cfg = get_cfg()
    cfg.INPUT.MIN_SIZE_TRAIN = (64,)
    cfg.INPUT.MAX_SIZE_TRAIN = 96
    cfg.INPUT.MIN_SIZE_TEST = 40
    cfg.INPUT.MAX_SIZE_TEST = 1000
    cfg.INPUT.FORMAT = "BGR"
    cfg.INPUT.CROP.ENABLED = True
    with pytest.raises(ValueError, match="absolute_range"):
        DetrDatasetMapper(cfg, True)  # Detectron2's default crop type is relative_range
    cfg.INPUT.CROP.TYPE = "absolute_range"
    cfg.INPUT.CROP.SIZE = (50, 80)
    cfg.INPUT.CROP.RESIZE_SIZES = (90,)
    train = DetrDatasetMapper(cfg, True)
    seed_all_rng(0)
    for _ in range(4):
        out = train(ramp_record)
        assert min(out["image"].shape[1:]) == 64 and max(out["image"].shape[1:]) <= 96
    out = DetrDatasetMapper(cfg, is_train=False)(ramp_record)
    assert tuple(out["image"].shape) == (3, 40, 50)
    # BGR: channel 0 is blue (0 in the ramp), channel 2 red (the x ramp)
    assert out["image"][0].max() == 0 and out["image"][2].max() > 150
