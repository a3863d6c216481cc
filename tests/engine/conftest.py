"""Fixtures of the engine tests: the toy detector's LazyConfig with overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from detectron2.config import LazyConfig

TOY_CONFIG = Path(__file__).resolve().with_name("toy_config.py")


def load_toy_config(output_dir, *overrides: str):
    """``toy_config.py`` with ``train.output_dir=output_dir`` and ``overrides`` applied."""
    cfg = LazyConfig.load(str(TOY_CONFIG))
    return LazyConfig.apply_overrides(cfg, [f"train.output_dir={output_dir}", *overrides])


@pytest.fixture
def toy_cfg(tmp_path):
    """``toy_cfg(*overrides, name="run")``: the toy config writing to ``tmp_path / name``."""

    def make(*overrides: str, name: str = "run"):
        return load_toy_config(tmp_path / name, *overrides)

    return make
