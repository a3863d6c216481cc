"""tools/training_summary.py on hand-written metrics.json files: the numbers it reports and
the checks that make it exit 1."""

import json
import math
import subprocess
import sys

import pytest
from conftest import REPO, load_tool

TOOL = REPO / "tools" / "training_summary.py"


def write_run(folder, losses, times=None, evaluation=None, log=None):
    """A metrics.json of one entry per iteration (evaluation merged into the last, as
    Detectron2's writer does) and an optional log.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, loss in enumerate(losses):
        entry = {"iteration": i, "total_loss": loss, "lr": 1e-4}
        if times is not None:
            entry["time"] = times[i]
        lines.append(entry)
    if evaluation is not None:
        lines[-1].update({f"bbox/{k}": v for k, v in evaluation.items()})
    (folder / "metrics.json").write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    if log is not None:
        (folder / "log.txt").write_text(log)
    return folder


def run_tool(*argv):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, argv)], capture_output=True, text=True, timeout=60
    )


def test_the_summary_averages_the_first_and_last_windows(tmp_path):
    tool = load_tool("training_summary")
    losses = [10.0, 8.0, 6.0, 5.0, 3.0, 1.0]
    times = [0.9, 0.5, 0.4, 0.3, 0.2, 0.6]
    evaluation = {"AP": 12.5, "AP50": 30.0, "AP-person": 40.0}
    folder = write_run(tmp_path / "run", losses, times, evaluation=evaluation)
    summary = tool.summarise(*tool.read_metrics(folder), window=2)
    assert summary["iterations"] == 6
    assert summary["loss_first"] == pytest.approx(9.0)
    assert summary["loss_last"] == pytest.approx(2.0)
    assert summary["loss_ratio"] == pytest.approx(2.0 / 9.0)
    assert summary["seconds_per_iter"] == pytest.approx(0.4)  # median of the last two
    assert summary["evaluation_iteration"] == 5
    assert (summary["AP"], summary["AP50"]) == (12.5, 30.0)
    assert "AP-person" not in summary
    assert summary["non_finite_losses"] == 0


def test_a_resumed_run_replaces_the_repeated_iterations(tmp_path):
    tool = load_tool("training_summary")
    folder = write_run(tmp_path / "run", [4.0, 3.0, 2.0])
    with open(folder / "metrics.json", "a") as f:  # resumed after iteration 0
        for i, loss in ((1, 30.0), (2, 20.0), (3, 10.0)):
            f.write(json.dumps({"iteration": i, "total_loss": loss}) + "\n")
    training, evaluation = tool.read_metrics(folder)
    assert [(e["iteration"], e["total_loss"]) for e in training] == [
        (0, 4.0),
        (1, 30.0),
        (2, 20.0),
        (3, 10.0),
    ]
    assert evaluation == []


def test_the_peak_memory_is_the_largest_logged(tmp_path):
    tool = load_tool("training_summary")
    log = "iter: 19  total_loss: 3  max_mem: 812M\n... max_mem: 1290M\nmax_mem: 1010M\n"
    folder = write_run(tmp_path / "run", [1.0], log=log)
    assert tool.peak_memory_mib(folder) == 1290
    assert tool.peak_memory_mib(write_run(tmp_path / "cpu", [1.0])) is None


def test_the_checks_pass_and_write_json(tmp_path):
    folder = write_run(tmp_path / "run", [10.0, 9.0, 2.0, 1.0], evaluation={"AP50": 55.0})
    done = run_tool(folder, "--window", "2", "--max-loss-ratio", "0.2", "--min-ap50", "50",
                    "--json", tmp_path / "out" / "summary.json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["loss_ratio"] == pytest.approx(1.5 / 9.5)
    assert summary["failures"] == []
    assert "loss_ratio" in done.stdout


@pytest.mark.parametrize(
    "losses, argv, message",
    [
        ([10.0, 9.0, 8.0, 8.0], ["--max-loss-ratio", "0.5"], "loss ratio last/first"),
        ([10.0, math.nan, 2.0, 1.0], [], "1 logged total losses are not finite"),
        ([10.0, 9.0, 2.0, 1.0], ["--min-ap50", "50"], "no evaluation was recorded"),
    ],
)
def test_a_failed_check_exits_1_and_names_it(tmp_path, losses, argv, message):
    folder = write_run(tmp_path / "run", losses)
    done = run_tool(folder, "--window", "2", *argv)
    assert done.returncode == 1
    assert message in done.stderr


def test_ap50_below_the_minimum_fails(tmp_path):
    folder = write_run(tmp_path / "run", [10.0, 1.0], evaluation={"AP50": 49.9})
    done = run_tool(folder, "--min-ap50", "50")
    assert done.returncode == 1 and "AP50 49.9 < 50" in done.stderr


def test_a_malformed_metrics_file_names_the_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text('{"iteration": 0, "total_loss": 1.0}\n{"iter\n')
    done = run_tool(folder)
    assert done.returncode != 0 and "metrics.json, line 2" in done.stderr
    missing = run_tool(tmp_path / "nowhere")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
