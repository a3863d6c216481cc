"""tools/relu_activity.py on the small DINO: a unit switched off in a checkpoint is reported
dead, and the JSON holds every hidden layer."""

import json

import pytest
import torch
from conftest import REPO, load_tool

from detr_efficient.data import register_shapes
from detr_efficient.evaluation import build_inference_model, load_config

DINO = REPO / "configs/dino/dino_shapes_cpu.py"
DATASET = "relu_activity_tool_val"


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    register_shapes(DATASET, tmp_path_factory.mktemp("data"), "val", num_images=2, seed=3)
    return load_tool("relu_activity")


def _run(tool, tmp_path, *extra):
    out = tmp_path / "new_folder" / "activity.json"  # the tool makes the folder
    argv = ["--config-file", str(DINO), "--dataset", DATASET, "--json", str(out), *extra]
    assert tool.main(argv) == 0
    return {row["name"]: row for row in json.loads(out.read_text())["layers"]}


def test_a_unit_switched_off_in_the_checkpoint_is_reported_dead(tool, tmp_path):
    torch.manual_seed(0)
    model = build_inference_model(load_config(DINO))
    with torch.no_grad():  # the first 32 of the query-position MLP's 128 hidden units
        model.decoder.ref_point_head.layers[0].bias[:32] = -1e4
    torch.save({"model": model.state_dict()}, tmp_path / "dead.pth")

    fresh = _run(tool, tmp_path)
    dead = _run(tool, tmp_path, "--checkpoint", str(tmp_path / "dead.pth"))
    name = "decoder.ref_point_head.layers.0"
    assert fresh[name]["units"] == 128 and fresh[name]["rows"] > 0
    assert fresh[name]["alive"] > 0.25
    assert dead[name]["alive"] <= 96 / 128 and dead[name]["alive"] < fresh[name]["alive"]
    assert dead[name]["positive"] < fresh[name]["positive"]
    assert {"box_head.layers.0", "box_head.layers.1", "decoder.layers.0.ffn.linear1"} <= set(dead)
    # The encoder runs before the query positions: the same weights give the same shares.
    for upstream in ("encoder.layers.1.ffn.linear1", "enc_box_head.layers.1"):
        assert dead[upstream] == fresh[upstream]


def test_bad_arguments_are_clear_errors(tool, tmp_path):
    with pytest.raises(SystemExit):
        tool.main(["--config-file", str(DINO), "--num-images", "0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            tool.main(["--config-file", str(DINO), "--device", "cuda"])
    with pytest.raises(KeyError, match="not a registered dataset"):
        tool.main(["--config-file", str(DINO), "--dataset", "no_such_dataset"])
    # Another detector's checkpoint would leave DINO's encoder at random: refused.
    focus = build_inference_model(load_config(REPO / "configs/focus_detr/focus_detr_shapes_cpu.py"))
    torch.save({"model": focus.state_dict()}, tmp_path / "focus.pth")
    with pytest.raises(ValueError, match="does not fill .* Is it a checkpoint of this config"):
        tool.main(
            [
                "--config-file",
                str(DINO),
                "--dataset",
                DATASET,
                "--checkpoint",
                str(tmp_path / "focus.pth"),
            ]
        )
