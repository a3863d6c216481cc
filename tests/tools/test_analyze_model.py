"""tools/analyze_model.py end to end on the stand-in detector (and the real small configs)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, load_tool

from detr_efficient.evaluation import count_parameters, load_config, ms_deform_attn_flops


@pytest.fixture(scope="module")
def tool():
    return load_tool("analyze_model")


def test_params_and_flops(tool, stand_in_config, tmp_path, capsys):
    out = tmp_path / "analysis.json"
    argv = ["--config-file", str(stand_in_config), "--tasks", "params", "flops"]
    assert tool.main([*argv, "--size", "64", "96", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "GFLOPs total" in printed and "params total (M)" in printed
    assert "GFLOPs encoder [encoder]" in printed

    params = result["params"]
    assert params["total"] == params["trainable"] == sum(params["by_child"].values())
    assert set(params["by_child"]) == {
        "backbone",
        "encoder",
        "query_embed",
        "reference",
        "decoder",
        "class_head",
        "box_head",
    }
    flops = result["flops"]
    assert result["input_size"] == [3, 64, 96]
    assert set(flops["encoder_gflops"]) == {"encoder"}
    children = flops["by_child_gflops"]
    assert flops["total_gflops"] == pytest.approx(sum(children.values()))
    # Encoder on the 8x12 stride-8 map: 96 tokens, 2 heads of 16 channels, 1 level, 2 points.
    tokens, dim = 8 * 12, 32
    linears = tokens * dim * (8 + 4 + dim + dim)  # offsets, weights, value, output
    encoder = linears + ms_deform_attn_flops(1, tokens, 2, 1, 2, 16)
    assert children["encoder"] * 1e9 == pytest.approx(encoder)
    assert children["backbone"] * 1e9 == pytest.approx(tokens * dim * 3 * 8 * 8)
    assert flops["by_operator_gflops"]["ms_deform_attn"] > 0
    assert "speed" not in result


def test_speed_and_overrides(tool, stand_in_config, tmp_path):
    out = tmp_path / "speed.json"
    argv = ["--config-file", str(stand_in_config), "--tasks", "speed", "--size", "32", "48"]
    argv += ["--warmup", "1", "--iters", "2", "--json", str(out), "model.num_classes=3"]
    assert tool.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["overrides"] == ["model.num_classes=3"]
    assert result["speed"]["fps"] > 0 and result["speed"]["iters"] == 2
    assert result["speed"]["memory_source"].startswith("cpu")


def test_loads_init_checkpoint(tool, stand_in_config, tmp_path):
    cfg = load_config(stand_in_config)
    from detectron2.config import instantiate

    model = instantiate(cfg.model)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    argv = ["--config-file", str(stand_in_config), "--tasks", "params"]
    argv += [f"train.init_checkpoint={tmp_path / 'w.pth'}", "--json", str(tmp_path / "p.json")]
    assert tool.main(argv) == 0
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["checkpoint"] == str(tmp_path / "w.pth")
    assert result["params"]["total"] == count_parameters(model)["total"]


def test_clear_errors(tool, stand_in_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found: .*nope.py"):
        tool.main(["--config-file", str(tmp_path / "nope.py"), "--tasks", "params"])
    missing = tmp_path / "missing.pth"
    argv = ["--config-file", str(stand_in_config), f"train.init_checkpoint={missing}"]
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pth"):
        tool.main(argv)
    with pytest.raises(SystemExit):
        tool.main(["--config-file", str(stand_in_config), "--num-inputs", "0"])
    with pytest.raises(SystemExit):
        tool.main(["--config-file", str(stand_in_config), "--tasks", "flop"])


@pytest.mark.slow  # a fresh interpreter importing torch and Detectron2: ~10 s on 2 cores
def test_command_line(stand_in_config, tmp_path):
    out = tmp_path / "cli.json"
    cmd = [sys.executable, str(REPO / "tools" / "analyze_model.py")]
    cmd += ["--config-file", str(stand_in_config), "--tasks", "params", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["params"]["total"] > 0


SMALL_CONFIGS = [
    "configs/dino/dino_shapes_cpu.py",
    "configs/deformable_detr/deformable_detr_shapes_cpu.py",
]


@pytest.mark.parametrize("config", SMALL_CONFIGS)
def test_small_real_configs(tool, config, tmp_path):
    if not (REPO / config).is_file():
        pytest.skip(f"{config} not written yet")
    out = tmp_path / "real.json"
    argv = ["--config-file", str(REPO / config), "--tasks", "params", "flops"]
    argv += ["--size", "128", "128", "--json", str(out), "train.init_checkpoint="]
    assert tool.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["params"]["total"] > 0
    assert result["flops"]["total_gflops"] > 0
    assert result["flops"]["encoder_gflops"], "no *encoder* module found"
    assert "ms_deform_attn" in result["flops"]["by_operator_gflops"]
    assert Path(out).is_file()
