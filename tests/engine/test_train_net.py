"""train_net.py end to end: DDP training from another directory, eval-only, bad configs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOY_CONFIG

REPO = Path(__file__).resolve().parents[2]


def _train_net(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TOY_CONFIG.parent), str(REPO)]))
    return subprocess.run(
        [sys.executable, str(REPO / "train_net.py"), "--config-file", str(TOY_CONFIG), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_misspelt_field_stops_before_launch(tmp_path):
    run = _train_net(f"train.output_dir={tmp_path}", "train.max_iters=5", cwd=tmp_path)
    assert run.returncode != 0
    assert "unknown field(s) train.max_iters" in run.stderr


@pytest.mark.slow
def test_ddp_training_then_eval_only_with_ema(tmp_path):
    out = tmp_path / "out"
    common = [f"train.output_dir={out}", "train.model_ema.enabled=True"]
    run = _train_net("--num-gpus", "2", "--dist-url", "auto", *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log and "eta:" in log and "copypaste: AP" in log
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("total_loss" in m for m in metrics) and any("bbox/AP" in m for m in metrics)
    assert list(out.glob("events.out.tfevents.*"))
    assert (out / "last_checkpoint").read_text() == "model_final.pth"

    final = out / "model_final.pth"
    run = _train_net("--eval-only", f"train.init_checkpoint={final}", *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Evaluating the EMA weights" in run.stdout
    assert "copypaste: AP,AP50" in run.stdout
