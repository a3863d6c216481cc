"""The shell tools parse (bash -n), and gpu_check.sh refuses an unknown stage before it
builds anything."""

import subprocess

import pytest
from conftest import REPO

SCRIPTS = sorted((REPO / "tools").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_script_parses(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gpu_check_refuses_an_unknown_stage(tmp_path):
    results = tmp_path / "results"
    done = subprocess.run(
        ["bash", str(REPO / "tools" / "gpu_check.sh"), str(results), "ops", "trian"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown stage 'trian' (ops, bench, detectors, variants, train)" in done.stderr
    assert list(results.iterdir()) == []  # nothing ran: no build log, no summary
