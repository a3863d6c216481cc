"""Registration in DatasetCatalog/MetadataCatalog and the cache/data-root defaults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import detr_efficient
from detr_efficient.data import (
    CLASS_NAMES,
    COCO_SUBSETS,
    SHAPES_SPLITS,
    cache_dir,
    data_root,
    register_all,
    register_shapes,
)

REPO_ROOT = Path(detr_efficient.__file__).resolve().parents[1]


@pytest.fixture
def restore_default_registration():
    yield
    register_all()


def test_default_names_are_registered():
    registered = DatasetCatalog.list()
    assert "coco_2017_val" in registered  # Detectron2's builtin names are untouched
    h, w = 256, 256
    for name, (split, _, _) in SHAPES_SPLITS.items():
        meta = MetadataCatalog.get(name)
        assert name in registered
        assert meta.thing_classes == list(CLASS_NAMES)
        assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
        assert meta.evaluator_type == "coco"
        assert meta.image_root == str(cache_dir() / f"shapes_{h}x{w}" / split)
        assert meta.json_file == str(
            cache_dir() / f"shapes_{h}x{w}" / "annotations" / f"instances_{split}.json"
        )
    for name, (image_root, json_file) in COCO_SUBSETS.items():
        meta = MetadataCatalog.get(name)
        assert name in registered
        assert len(meta.thing_classes) == 80 and meta.thing_classes[0] == "person"
        assert meta.thing_dataset_id_to_contiguous_id[90] == 79
        assert meta.evaluator_type == "coco"
        assert (meta.json_file, meta.image_root) == (
            str(data_root() / json_file),
            str(data_root() / image_root),
        )
    assert SHAPES_SPLITS["shapes_train"][2] != SHAPES_SPLITS["shapes_val"][2]


def test_register_all_is_idempotent(restore_default_registration):
    before = DatasetCatalog.list()
    register_all()
    register_all()
    assert sorted(DatasetCatalog.list()) == sorted(before)


def test_paths_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DETR_EFFICIENT_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("DETR_EFFICIENT_DATA", str(tmp_path / "d"))
    assert (cache_dir(), data_root()) == (tmp_path / "c", tmp_path / "d")
    monkeypatch.delenv("DETR_EFFICIENT_CACHE")
    monkeypatch.delenv("DETR_EFFICIENT_DATA")
    assert (REPO_ROOT / "pyproject.toml").is_file()  # these tests run from a source checkout
    assert cache_dir() == REPO_ROOT / ".cache"
    assert data_root() == (REPO_ROOT.parent / "shared" / "data").resolve()


def test_shapes_are_generated_lazily(tmp_path):
    name = "detr_efficient_test_shapes_tiny"
    register_shapes(name, tmp_path, "train", 5, seed=11, image_size=(64, 96), min_size=6)
    try:
        assert not any(tmp_path.iterdir())  # nothing generated at registration
        dicts = DatasetCatalog.get(name)
        meta = MetadataCatalog.get(name)
        raw = json.loads(Path(meta.json_file).read_text())
        assert len(dicts) == 5 and raw["info"]["params"]["seed"] == 11
        assert sum(len(d["annotations"]) for d in dicts) == len(raw["annotations"])
        for d in dicts:
            assert Path(d["file_name"]).is_file()
            assert (d["height"], d["width"]) == (64, 96)
            assert all(0 <= a["category_id"] < len(CLASS_NAMES) for a in d["annotations"])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_default_shapes_val_in_custom_cache(tmp_path, restore_default_registration):
    register_all(cache=tmp_path)
    dicts = DatasetCatalog.get("shapes_val")
    json_file = Path(MetadataCatalog.get("shapes_val").json_file)
    assert json_file == tmp_path / "shapes_256x256" / "annotations" / "instances_val.json"
    params = json.loads(json_file.read_text())["info"]["params"]
    assert (len(dicts), params["num_images"], params["seed"]) == (200, 200, 2)


@pytest.mark.parametrize(
    ("name", "num_images", "num_boxes"),
    [("coco_tiny_train", 80, 705), ("coco_tiny_val", 80, 815), ("coco128_train", 128, 939)],
)
def test_coco_subsets(shared_data, name, num_images, num_boxes):
    meta = MetadataCatalog.get(name)
    raw = json.loads(Path(meta.json_file).read_text())
    assert (len(raw["images"]), len(raw["annotations"])) == (num_images, num_boxes)
    # The loader drops only zero-width/height boxes; these files have none.
    zero_size = [a for a in raw["annotations"] if a["bbox"][2] == 0 or a["bbox"][3] == 0]
    assert zero_size == []

    dicts = DatasetCatalog.get(name)
    assert len(dicts) == num_images
    assert [d["image_id"] for d in dicts] == [im["id"] for im in raw["images"]]
    anns = [a for d in dicts for a in d["annotations"]]
    assert len(anns) == num_boxes - len(zero_size)
    assert sum(a["iscrowd"] for a in anns) == sum(a["iscrowd"] for a in raw["annotations"])
    # the category of every box maps back to its json name
    names = {c["id"]: c["name"] for c in raw["categories"]}
    expected = Counter(names[a["category_id"]] for a in raw["annotations"])
    assert Counter(meta.thing_classes[a["category_id"]] for a in anns) == expected
    for d in dicts:
        assert Path(d["file_name"]).is_file()
        assert Path(d["file_name"]).parent == Path(meta.image_root)
