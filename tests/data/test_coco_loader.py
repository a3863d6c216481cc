"""The checked COCO loader: correct output on valid input, DatasetError on malformed input."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from detr_efficient.data import DatasetError, load_coco_json_checked

VALID = {
    "images": [
        {"id": 7, "file_name": "a.jpg", "height": 30, "width": 40},
        {"id": 9, "file_name": "b.jpg", "height": 30, "width": 40},
    ],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 10, 5], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0.5, 0, 20.25, 30]},
        {"id": 3, "image_id": 9, "category_id": 5, "bbox": [4, 4, 0, 3], "iscrowd": 0},
        {"id": 4, "image_id": 9, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 1},
    ],
    "categories": [{"id": 5, "name": "five"}, {"id": 3, "name": "three"}],
}


@pytest.fixture
def coco_dir(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (40, 30)).save(tmp_path / name)
    return tmp_path


def _write(directory, data) -> str:
    path = directory / "instances.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_valid_file_is_loaded(coco_dir, caplog):
    with caplog.at_level(logging.INFO, logger="detr_efficient.data.coco_loader"):
        dicts = load_coco_json_checked(_write(coco_dir, VALID), coco_dir)
    assert [(d["image_id"], d["height"], d["width"]) for d in dicts] == [(7, 30, 40), (9, 30, 40)]
    assert [d["file_name"] for d in dicts] == [str(coco_dir / "a.jpg"), str(coco_dir / "b.jpg")]
    # contiguous ids follow ascending json ids: 3 -> 0, 5 -> 1
    assert dicts[0]["annotations"] == [
        {
            "bbox": [1.0, 2.0, 10.0, 5.0],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 1,
            "iscrowd": 0,
        },
        {
            "bbox": [0.5, 0.0, 20.25, 30.0],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 0,
            "iscrowd": 0,
        },
    ]
    # the zero-width box is dropped (and logged), the crowd box kept
    assert dicts[1]["annotations"] == [
        {
            "bbox": [0.0, 0.0, 40.0, 30.0],
            "bbox_mode": BoxMode.XYWH_ABS,
            "category_id": 0,
            "iscrowd": 1,
        },
    ]
    assert "dropped 1 zero-width/height box" in caplog.text
    assert "Loaded 2 images, 3 boxes (1 crowd)" in caplog.text


def test_metadata_is_set_then_checked(coco_dir):
    name = "detr_efficient_test_loader_meta"
    path = _write(coco_dir, VALID)
    try:
        load_coco_json_checked(path, coco_dir, name)
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["three", "five"]
        assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 5: 1}
        load_coco_json_checked(path, coco_dir, name)  # consistent: fine
        other = copy.deepcopy(VALID)
        other["categories"][0]["name"] = "FIVE"
        with pytest.raises(DatasetError, match="'categories'"):
            load_coco_json_checked(_write(coco_dir, other), coco_dir, name)
    finally:
        MetadataCatalog.remove(name)


def _mutated(change):
    data = copy.deepcopy(VALID)
    change(data)
    return data


MALFORMED = {
    "missing_key": (lambda d: d.pop("annotations"), "missing top-level key(s) 'annotations'"),
    "not_a_list": (lambda d: d.update(images={}), "'images' must be a list"),
    "empty_images": (lambda d: d.update(images=[]), "'images' is empty"),
    "empty_categories": (lambda d: d.update(categories=[]), "'categories' is empty"),
    "bbox_three_numbers": (
        lambda d: d["annotations"][1].update(bbox=[1, 2, 3]),
        "annotations[1] (id=2): field 'bbox' must be 4 finite numbers",
    ),
    "bbox_string": (
        lambda d: d["annotations"][0].update(bbox=["1", 2, 3, 4]),
        "annotations[0] (id=1): field 'bbox' must be 4 finite numbers",
    ),
    "bbox_nan": (
        lambda d: d["annotations"][2].update(bbox=[1, 2, float("nan"), 4]),
        "annotations[2] (id=3): field 'bbox' must be 4 finite numbers",
    ),
    "bbox_negative": (
        lambda d: d["annotations"][3].update(bbox=[1, 2, 3, -4]),
        "annotations[3] (id=4): field 'bbox' has a negative width/height",
    ),
    "unknown_image": (
        lambda d: d["annotations"][1].update(image_id=8),
        "annotations[1] (id=2): field 'image_id' = 8 is not a known id",
    ),
    "unknown_category": (
        lambda d: d["annotations"][0].update(category_id=4),
        "annotations[0] (id=1): field 'category_id' = 4 is not a known id",
    ),
    "duplicate_annotation": (
        lambda d: d["annotations"][3].update(id=1),
        "annotations[3]: duplicate annotation id 1",
    ),
    "image_without_size": (
        lambda d: d["images"][1].pop("height"),
        "images[1] (id=9): field 'height' must be a positive integer",
    ),
    "duplicate_image": (
        lambda d: d["images"][1].update(id=7),
        "images[1] (id=7): duplicate image id",
    ),
    "category_without_name": (
        lambda d: d["categories"][1].pop("name"),
        "categories[1] (id=3): field 'name' must be a string",
    ),
    "missing_image_file": (
        lambda d: d["images"][1].update(file_name="nowhere.jpg"),
        "1 image file(s) named in 'images' do not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_json_raises_dataset_error(coco_dir, case):
    change, message = MALFORMED[case]
    path = _write(coco_dir, _mutated(change))
    with pytest.raises(DatasetError) as info:
        load_coco_json_checked(path, coco_dir)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    if case == "missing_image_file":
        assert "nowhere.jpg" in str(info.value)


def test_missing_json_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(DatasetError, match="annotation file not found") as info:
        load_coco_json_checked(path, tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ['{"images": [', "\xff\xfe not json", "[1, 2]"])
def test_invalid_json(tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetError) as info:
        load_coco_json_checked(path, tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "invalid JSON" in message or "top level must be a JSON object" in message


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)
