"""Shared fixtures of the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import detr_efficient  # noqa: F401  (applies the Detectron2 compat fixes first)
from detr_efficient.data import data_root, generate_shapes


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real COCO subsets root; skips the test where it is absent."""
    root = data_root()
    if not ((root / "coco_tiny").is_dir() and (root / "coco128").is_dir()):
        pytest.skip(f"shared COCO subsets not found under {root} (set DETR_EFFICIENT_DATA)")
    return root


@pytest.fixture(scope="session")
def shapes_json(tmp_path_factory) -> Path:
    """A 60-image 256x256 shapes split (seed 0); returns its json path."""
    return generate_shapes(tmp_path_factory.mktemp("shapes"), "train", 60, seed=0)
