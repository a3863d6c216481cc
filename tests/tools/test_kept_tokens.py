"""tools/kept_tokens.py: the kept-token picture of a small Focus-DETR, and clear errors for a
detector that keeps every token and for a CUDA device where there is none."""

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from PIL import Image

from detr_efficient.evaluation import build_inference_model, load_config

FOCUS = REPO / "configs/focus_detr/focus_detr_shapes_cpu.py"
DINO = REPO / "configs/dino/dino_shapes_cpu.py"


@pytest.fixture(scope="module")
def tool():
    return load_tool("kept_tokens")


def _checkpoint(config, path):
    torch.manual_seed(0)
    model = build_inference_model(load_config(config))
    torch.save({"model": model.state_dict()}, path)
    return model


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 256, 3), dtype=np.uint8)).save(path)
    return path


def test_masks_hold_each_layers_kept_tokens_per_level(tool, image, tmp_path):
    model = _checkpoint(FOCUS, tmp_path / "m.pth")
    mapper = tool.build_mapper(load_config(FOCUS))
    inputs = mapper({"file_name": str(image), "image_id": 0})
    first, last, shapes = tool.kept_masks(model, inputs)
    assert [tuple(m.shape) for m in first] == shapes
    with torch.no_grad():
        encoding = model.encode_sparse([inputs])[3]
    assert sum(int(m.sum()) for m in first) == int(encoding.counts[0][0])
    assert sum(int(m.sum()) for m in last) == int(encoding.counts[-1][0])
    for a, b in zip(first, last, strict=True):
        assert not (b & ~a).any()  # the cascade keeps a subset of the first layer's tokens


def test_writes_one_panel_per_level(tool, image, tmp_path):
    _checkpoint(FOCUS, tmp_path / "m.pth")
    out = tmp_path / "kept.png"
    argv = ["--config-file", str(FOCUS), "--checkpoint", str(tmp_path / "m.pth")]
    assert tool.main([*argv, "--input", str(image), "--output", str(out)]) == 0
    picture = Image.open(out)
    inputs = tool.build_mapper(load_config(FOCUS))({"file_name": str(image), "image_id": 0})
    height, width = inputs["image"].shape[1:]
    assert picture.size == (4 * width, height)


def test_a_detector_without_token_selection_is_a_clear_error(tool, image, tmp_path):
    _checkpoint(DINO, tmp_path / "d.pth")
    argv = ["--config-file", str(DINO), "--checkpoint", str(tmp_path / "d.pth")]
    with pytest.raises(SystemExit, match="does not select encoder tokens"):
        tool.main([*argv, "--input", str(image), "--output", str(tmp_path / "x.png")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_without_one_is_a_clear_error(tool, image, tmp_path, capsys):
    _checkpoint(FOCUS, tmp_path / "m.pth")
    argv = ["--config-file", str(FOCUS), "--checkpoint", str(tmp_path / "m.pth")]
    with pytest.raises(SystemExit):
        tool.main([*argv, "--input", str(image), "--output", "x.png", "--device", "cuda"])
    assert "--device cuda: no CUDA device is available" in capsys.readouterr().err
