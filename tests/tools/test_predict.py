"""tools/predict.py end to end on the stand-in detector."""

import json

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from PIL import Image

from detr_efficient.evaluation import build_inference_model, load_config


@pytest.fixture(scope="module")
def tool():
    return load_tool("predict")


def _save_checkpoint(config, path, *overrides):
    model = build_inference_model(load_config(config, overrides))
    torch.save({"model": model.state_dict(), "iteration": 7}, path)
    return path


@pytest.fixture
def checkpoint(stand_in_config, tmp_path):
    return _save_checkpoint(stand_in_config, tmp_path / "model.pth")


@pytest.fixture
def images(tmp_path):
    """``a.png`` (120x90) alone and a folder with ``b.jpg`` (64x200) and a text file."""
    rng = np.random.default_rng(0)
    single = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(single)
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (64, 200, 3), dtype=np.uint8)).save(folder / "sub/b.jpg")
    (folder / "notes.txt").write_text("not an image")
    return single, folder


def argv(config, checkpoint, inputs, output, *extra):
    return [
        "--config-file",
        str(config),
        "--checkpoint",
        str(checkpoint),
        "--input",
        *map(str, inputs),
        "--output",
        str(output),
        "--device",
        "cpu",
        *extra,
    ]


def test_predict_writes_pngs_and_coco_json(tool, stand_in_config, checkpoint, images, tmp_path):
    single, folder = images
    out = tmp_path / "out"
    seen = []
    original = tool.ma.build_inference_model

    def build(*args, **kwargs):  # record the image sizes the model sees
        model = original(*args, **kwargs)
        model.backbone.register_forward_pre_hook(lambda m, x: seen.append(x[0].shape[-2:]))
        return model

    tool.ma.build_inference_model = build
    try:
        args = argv(stand_in_config, checkpoint, [single, folder], out, "--score-threshold", "0")
        assert tool.main(args) == 0
    finally:
        tool.ma.build_inference_model = original

    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").size == (120, 90)
    # The test mapper resizes the short side to 64 (long side at most 96), padded to /8.
    assert [tuple(s) for s in seen] == [(64, 88), (32, 96)]  # 64x85, 31x96 padded

    results = json.loads((out / "predictions.json").read_text())
    assert len(results) == 2 * 6  # 6 queries per image, threshold 0
    sizes = {str(single): (120, 90), str(folder / "sub" / "b.jpg"): (200, 64)}
    assert {r["file_name"] for r in results} == set(sizes)
    for r in results:
        assert set(r) == {"file_name", "image_id", "category_id", "bbox", "score"}
        width, height = sizes[r["file_name"]]
        x, y, w, h = r["bbox"]
        assert x >= 0 and y >= 0 and w >= 0 and h >= 0
        assert x + w <= width + 1e-3 and y + h <= height + 1e-3
        assert 1 <= r["category_id"] <= 5  # shapes_val ids are 1-based
        assert 0 <= r["score"] <= 1
    assert {r["image_id"] for r in results if r["file_name"] == str(single)} == {0}


def test_threshold_and_no_dataset_ids(tool, stand_in_config, checkpoint, images, tmp_path):
    single, _ = images
    out = tmp_path / "out"
    args = argv(stand_in_config, checkpoint, [single], out, "--score-threshold", "1")
    assert tool.main(args) == 0
    assert json.loads((out / "predictions.json").read_text()) == []
    assert (out / "a.png").is_file()

    three = _save_checkpoint(stand_in_config, tmp_path / "three.pth", "model.num_classes=3")
    extra = ["--score-threshold", "0", "--dataset-name", "coco_tiny_val", "model.num_classes=3"]
    assert tool.main(argv(stand_in_config, three, [single], out, *extra)) == 0
    ids = {r["category_id"] for r in json.loads((out / "predictions.json").read_text())}
    assert ids <= {1, 2, 3}  # COCO ids of contiguous classes 0..2


def test_clear_errors(tool, stand_in_config, checkpoint, images, tmp_path):
    single, folder = images
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="--input .*missing.jpg: no such file or folder"):
        tool.main(argv(stand_in_config, checkpoint, [tmp_path / "missing.jpg"], out))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no image files in this folder"):
        tool.main(argv(stand_in_config, checkpoint, [tmp_path / "empty"], out))
    with pytest.raises(SystemExit, match="--checkpoint .*nope.pth: no such file"):
        tool.main(argv(stand_in_config, tmp_path / "nope.pth", [single], out))
    bad = tmp_path / "broken.jpg"
    bad.write_text("not a jpeg")
    with pytest.raises(SystemExit, match="broken.jpg: cannot read image"):
        tool.main(argv(stand_in_config, checkpoint, [bad], out))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00garbage")
    with pytest.raises(SystemExit, match="cannot load checkpoint .*garbage.pth"):
        tool.main(argv(stand_in_config, garbage, [single], out))
    with pytest.raises(SystemExit, match="unknown_set: not a registered dataset"):
        tool.main(argv(stand_in_config, checkpoint, [single], out, "--dataset-name", "unknown_set"))
    eighty = _save_checkpoint(stand_in_config, tmp_path / "eighty.pth", "model.num_classes=80")
    with pytest.raises(SystemExit, match="predicts class .* has 5 classes"):
        extra = ["--score-threshold", "0", "model.num_classes=80"]
        tool.main(argv(stand_in_config, eighty, [single], out, *extra))
    # A checkpoint of another class count would leave the class head at random: refused.
    with pytest.raises(SystemExit, match="does not fill 2 of the model's .*class_head"):
        tool.main(argv(stand_in_config, checkpoint, [single], out, "model.num_classes=80"))


SMALL_CONFIGS = [
    "configs/dino/dino_shapes_cpu.py",
    "configs/deformable_detr/deformable_detr_shapes_cpu.py",
]


@pytest.mark.parametrize("config", SMALL_CONFIGS)
def test_small_real_configs(tool, config, tmp_path):
    """The real detectors keep the contract: boxes in original-image coordinates."""
    path = REPO / config
    if not path.is_file():
        pytest.skip(f"{config} not written yet")
    overrides = ["train.init_checkpoint="]
    model = build_inference_model(load_config(path, overrides))
    checkpoint = tmp_path / "random.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    image = tmp_path / "img.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (150, 310, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    extra = ["--score-threshold", "0", *overrides]
    assert tool.main(argv(path, checkpoint, [image], out, *extra)) == 0
    results = json.loads((out / "predictions.json").read_text())
    assert results and (out / "img.png").is_file()
    for r in results:
        x, y, w, h = r["bbox"]
        assert min(x, y) >= -1e-3 and x + w <= 310 + 1e-3 and y + h <= 150 + 1e-3
        assert 1 <= r["category_id"] <= 5
