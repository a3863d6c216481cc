"""The synthetic shapes generator: determinism, idempotence, annotation validity, COCO tools."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detr_efficient.data import CLASS_NAMES, generate_shapes
from detr_efficient.data import shapes as shapes_module


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    generate_shapes(tmp_path / "a", "train", 6, seed=3)
    generate_shapes(tmp_path / "b", "train", 6, seed=3)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == ["annotations/instances_train.json"] + [
        f"train/{i:06d}.jpg" for i in range(1, 7)
    ]
    assert a == b


def test_different_seed_differs(tmp_path):
    ja = generate_shapes(tmp_path / "a", "train", 6, seed=3)
    jb = generate_shapes(tmp_path / "b", "train", 6, seed=4)
    a, b = json.loads(ja.read_text()), json.loads(jb.read_text())
    assert a["annotations"] != b["annotations"]
    for i in range(1, 7):
        name = f"train/{i:06d}.jpg"
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_images_do_not_depend_on_num_images(tmp_path):
    generate_shapes(tmp_path / "short", "val", 3, seed=9)
    generate_shapes(tmp_path / "long", "val", 5, seed=9)
    for i in range(1, 4):
        name = f"val/{i:06d}.jpg"
        assert (tmp_path / "short" / name).read_bytes() == (tmp_path / "long" / name).read_bytes()


def test_existing_dataset_is_reused_and_stale_one_regenerated(tmp_path):
    path = generate_shapes(tmp_path, "train", 4, seed=1)
    image = tmp_path / "train" / "000002.jpg"
    stamps = path.stat().st_mtime_ns, image.stat().st_mtime_ns
    assert generate_shapes(tmp_path, "train", 4, seed=1) == path
    assert (path.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps

    generate_shapes(tmp_path, "train", 5, seed=1)  # other parameters: regenerated
    data = json.loads(path.read_text())
    assert len(data["images"]) == 5 and data["info"]["params"]["num_images"] == 5

    image.unlink()  # an image went missing: regenerated
    generate_shapes(tmp_path, "train", 5, seed=1)
    assert image.is_file()

    path.write_text('{"images": [')  # a damaged json: regenerated
    generate_shapes(tmp_path, "train", 5, seed=1)
    assert len(json.loads(path.read_text())["images"]) == 5


def test_interrupted_generation_leaves_no_json(tmp_path, monkeypatch):
    path = generate_shapes(tmp_path, "train", 3, seed=1)
    calls = []
    render = shapes_module.render_shapes_image

    def failing_render(rng, params):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return render(rng, params)

    monkeypatch.setattr(shapes_module, "render_shapes_image", failing_render)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path, "train", 6, seed=1)
    assert not path.exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_annotations_are_valid_coco(shapes_json):
    data = json.loads(shapes_json.read_text())
    assert data["info"]["params"] == {
        "split": "train",
        "num_images": 60,
        "seed": 0,
        "image_size": [256, 256],
        "min_objects": 2,
        "max_objects": 10,
        "min_size": 8.0,
        "max_size_frac": 0.65,
        "min_visible": 0.3,
        "jpeg_quality": 90,
    }
    assert data["categories"] == [
        {"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)
    ]
    assert [im["id"] for im in data["images"]] == list(range(1, 61))
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))
    per_image = Counter(a["image_id"] for a in data["annotations"])
    assert set(per_image) == set(range(1, 61))  # every image has at least one object
    assert max(per_image.values()) <= 10
    for im in data["images"]:
        assert (im["height"], im["width"]) == (256, 256)
        with Image.open(shapes_json.parent.parent / "train" / im["file_name"]) as f:
            assert (f.format, f.size) == ("JPEG", (256, 256))
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert all(isinstance(v, int) for v in a["bbox"])
        assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        assert w >= 2 and h >= 2
        assert 0 < a["area"] <= w * h
        assert a["iscrowd"] == 0 and 1 <= a["category_id"] <= len(CLASS_NAMES)


def test_sizes_cover_all_feature_levels_and_classes(shapes_json):
    anns = json.loads(shapes_json.read_text())["annotations"]
    sides = np.array([max(a["bbox"][2:]) for a in anns])
    assert sides.min() <= 8  # tiny objects exist
    assert sides.max() >= 0.55 * 256  # large ones too
    # at least a few boxes per octave of size, i.e. for each stride 8..64 level
    counts = np.histogram(sides, bins=[0, 16, 32, 64, 128, 257])[0]
    assert (counts >= 10).all(), counts
    classes = Counter(a["category_id"] for a in anns)
    assert set(classes) == set(range(1, len(CLASS_NAMES) + 1))
    assert min(classes.values()) >= 0.1 * len(anns)
    fill = np.array([a["area"] / (a["bbox"][2] * a["bbox"][3]) for a in anns])
    assert fill.min() < 0.3 and fill.max() > 0.75  # outlined and filled shapes


def _square(y0, x0, side=20):
    return shapes_module._Shape(0, np.ones((side, side), bool), y0, x0, np.zeros(3))


@pytest.mark.parametrize(
    ("top_x0", "expected_bottom"),
    [
        (16, (120, [10, 10, 6, 20])),  # 6 of 20 columns visible: 30% -> kept
        (15, None),  # 5 of 20 columns visible: 25% -> not drawn, not annotated
    ],
)
def test_occlusion_rule_by_hand(top_x0, expected_bottom):
    bottom, top, cut = _square(10, 10), _square(10, top_x0), _square(50, -5)
    keep, visible = shapes_module._keep_visible([bottom, top, cut], 64, 64, min_visible=0.3)
    top_box = (400, [top_x0, 10, 20, 20])
    cut_box = (210, [0, 50, 15, 14])  # truncated by the left and bottom image borders
    if expected_bottom is None:
        assert keep == [top, cut] and visible == [top_box, cut_box]
    else:
        assert keep == [bottom, top, cut] and visible == [expected_bottom, top_box, cut_box]


def test_non_square_images(tmp_path):
    path = generate_shapes(tmp_path, "val", 4, image_size=(96, 160), seed=2, min_size=6)
    data = json.loads(path.read_text())
    for im in data["images"]:
        assert (im["height"], im["width"]) == (96, 160)
        with Image.open(tmp_path / "val" / im["file_name"]) as f:
            assert f.size == (160, 96)
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert x + w <= 160 and y + h <= 96


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_images": 0},
        {"image_size": (16, 16)},
        {"min_objects": 0},
        {"min_objects": 5, "max_objects": 4},
        {"min_size": 200},
        {"min_visible": 1.5},
    ],
)
def test_invalid_parameters(tmp_path, kwargs):
    kwargs = {"num_images": 2, **kwargs}
    with pytest.raises(ValueError):
        generate_shapes(tmp_path, "train", **kwargs)


def test_pycocotools_scores_ground_truth_at_ap_one(shapes_json):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(shapes_json))
        dets = [
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": a["bbox"],
                "score": 1.0,
            }
            for a in gt.dataset["annotations"]
        ]
        ev = COCOeval(gt, gt.loadRes(dets), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert len(gt.getImgIds()) == 60 and len(gt.getCatIds()) == len(CLASS_NAMES)
    assert ev.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert ev.stats[1] == pytest.approx(1.0)  # AP50
    assert ev.stats[8] == pytest.approx(1.0)  # AR@100
