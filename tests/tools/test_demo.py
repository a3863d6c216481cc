"""tools/demo.py: the training time it reports is the one Detectron2 logged when the run
trained, also when a finished run is reused (resumed for zero iterations); the
``--detectors`` list."""

import argparse

import pytest
from conftest import load_tool

TRAINED = (
    "[11/21 15:35:51 d2.engine.hooks]: Overall training speed: 1098 iterations in 0:10:14 "
    "(0.5598 s / it)\n"
    "[11/21 15:35:51 d2.engine.hooks]: Total training time: 0:10:15 (0:00:00 on hooks)\n"
)
REUSED = "[11/21 16:00:18 d2.engine.hooks]: Total training time: 0:00:00 (0:00:00 on hooks)\n"


def test_training_minutes_of_a_reused_run_are_the_original_ones(tmp_path):
    demo = load_tool("demo")
    (tmp_path / "log.txt").write_text(TRAINED + REUSED)
    assert abs(demo.training_minutes(tmp_path) - (10 + 14 / 60)) < 1e-9


def test_training_minutes_without_a_logged_training(tmp_path):
    demo = load_tool("demo")
    assert demo.training_minutes(tmp_path) is None
    (tmp_path / "log.txt").write_text(REUSED)
    assert demo.training_minutes(tmp_path) is None


def test_detectors_are_a_comma_separated_list_checked_against_the_known_ones():
    demo = load_tool("demo")
    assert demo.detector_list("dino, focus_ddq_detr") == ["dino", "focus_ddq_detr"]
    for bad in ("dino,yolo", ",", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="choose from"):
            demo.detector_list(bad)


def test_final_metrics_are_the_last_evaluation_per_class_included(tmp_path):
    demo = load_tool("demo")
    lines = [
        '{"iteration": 9, "total_loss": 3.0}',
        '{"iteration": 19, "total_loss": 2.0, "bbox/AP": 10.0, "bbox/AP-circle": 12.0}',
        '{"iteration": 29, "total_loss": 1.0}',
        '{"iteration": 30, "bbox/AP": 20.0, "bbox/AP50": 40.0, "bbox/AP-circle": 25.0}',
    ]
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    assert demo.final_metrics(tmp_path) == {"AP": 20.0, "AP50": 40.0, "AP-circle": 25.0}
    (tmp_path / "metrics.json").write_text(lines[0] + "\n")
    with pytest.raises(RuntimeError, match="no bbox evaluation was recorded"):
        demo.final_metrics(tmp_path)
