"""tools/compare_detectors.py: one table and JSON for several detectors, ratios to the first."""

import json

import pytest
from conftest import REPO, load_tool

DINO = str(REPO / "configs/dino/dino_shapes_cpu.py")
FOCUS = str(REPO / "configs/focus_detr/focus_detr_shapes_cpu.py")


def test_rows_ratios_and_json(tmp_path, capsys):
    tool = load_tool("compare_detectors")
    out = tmp_path / "cmp.json"
    argv = ["--configs", DINO, FOCUS, "--size", "96", "128", "--rounds", "1", "--iters", "1"]
    assert tool.main([*argv, "--warmup", "0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["config"] for r in rows] == [DINO, FOCUS]
    dino, focus = rows
    assert dino["fps_ratio"] == 1.0 and dino["gflops_ratio"] == 1.0
    assert focus["gflops_ratio"] == focus["gflops"] / dino["gflops"]
    assert dino["tokens_updated"] == 1.0 and focus["tokens_updated"] < 0.5
    assert focus["encoder_gflops"] < dino["encoder_gflops"]
    assert "focus_detr_shapes_cpu.py" in capsys.readouterr().out


def test_a_detector_without_an_encoder_gets_dashes(tmp_path, capsys):
    tool = load_tool("compare_detectors")
    fcn = str(REPO / "configs/ddq/ddq_fcn_shapes_cpu.py")
    argv = ["--configs", DINO, fcn, "--size", "96", "128", "--rounds", "1", "--iters", "1"]
    assert tool.main([*argv, "--warmup", "0", "--json", str(tmp_path / "cmp.json")]) == 0
    dino, dense = json.loads((tmp_path / "cmp.json").read_text())["rows"]
    assert dense["tokens_updated"] is None and dense["encoder_gflops"] == 0
    assert dense["encoder_gflops_ratio"] == 0 and dense["gflops"] > 0
    assert "—" in capsys.readouterr().out


def test_training_steps_add_seconds_and_memory(tmp_path, capsys):
    tool = load_tool("compare_detectors")
    argv = ["--configs", DINO, FOCUS, "--size", "64", "64", "--rounds", "1", "--iters", "1"]
    argv += ["--warmup", "0", "--no-flops", "--train-iters", "1", "--train-batch", "2"]
    argv += ["--train-precision", "fp32", "bf16"]
    assert tool.main([*argv, "--json", str(tmp_path / "cmp.json")]) == 0
    rows = json.loads((tmp_path / "cmp.json").read_text())["rows"]
    for row in rows:
        for precision in ("fp32", "bf16"):
            assert row[f"train_s_per_iter_{precision}"] > 0
            assert row[f"train_peak_memory_mb_{precision}"] >= 0
        assert "gflops" not in row
    out = capsys.readouterr().out
    assert "train s/it fp32" in out and "train s/it bf16" in out


def test_a_variant_applies_its_overrides_and_a_distiller_trains_with_its_random_teacher(
    tmp_path, capsys
):
    tool = load_tool("compare_detectors")
    distill = str(REPO / "configs/detr_distill/dino_shapes_cpu.py")
    reference = [f"model.{m}.use_reference=True" for m in ("encoder.layer.self_attn",)]
    argv = ["--configs", DINO, "--variant", "dino-pytorch", DINO, *reference]
    argv += ["--variant", "distill", distill, "model.teacher_weights=null"]
    argv += ["--size", "64", "64", "--rounds", "1"]
    argv += ["--iters", "1", "--warmup", "0", "--no-flops", "--train-iters", "1"]
    assert tool.main([*argv, "--json", str(tmp_path / "cmp.json")]) == 0
    dino, pytorch, distiller = json.loads((tmp_path / "cmp.json").read_text())["rows"]
    assert (pytorch["config"], pytorch["config_file"]) == ("dino-pytorch", DINO)
    assert pytorch["overrides"] == reference and dino["overrides"] == []
    assert pytorch["params_m"] == dino["params_m"]
    assert distiller["train_s_per_iter_fp32"] > 0
    assert "dino-pytorch" in capsys.readouterr().out


def test_a_variant_without_a_config_is_refused(capsys):
    tool = load_tool("compare_detectors")
    with pytest.raises(SystemExit):
        tool.parse_args(["--variant", "lonely"])
    assert "needs LABEL CONFIG" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--variant", "typo", DINO, "model.encoder"])
    assert "needs LABEL CONFIG" in capsys.readouterr().err


def test_a_run_stopped_in_training_keeps_the_rows_measured(tmp_path, monkeypatch):
    tool = load_tool("compare_detectors")
    measure, calls = tool.ma.measure_training_step, []

    def second_model_fails(model, *args):
        calls.append(model)
        if len({id(m) for m in calls}) == 2:
            raise RuntimeError("stopped")
        return measure(model, *args)

    monkeypatch.setattr(tool.ma, "measure_training_step", second_model_fails)
    argv = ["--configs", DINO, FOCUS, "--size", "64", "64", "--rounds", "1", "--iters", "1"]
    argv += ["--warmup", "0", "--no-flops", "--train-iters", "1", "--train-batch", "1"]
    with pytest.raises(RuntimeError, match="stopped"):
        tool.main([*argv, "--json", str(tmp_path / "cmp.json")])
    dino, focus = json.loads((tmp_path / "cmp.json").read_text())["rows"]
    assert dino["fps_ratio"] == 1.0 and focus["fps"] > 0
    assert dino["train_s_per_iter_fp32"] > 0 and "train_s_per_iter_fp32" not in focus
