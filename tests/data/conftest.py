"""Shared fixtures of the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import detr_efficient  # noqa: F401  (applies the Detectron2 compat fixes first)
from detr_efficient.data import generate_shapes


@pytest.fixture(scope="session")
def shapes_json(tmp_path_factory) -> Path:
    """A 60-image 256x256 shapes split (seed 0); returns its json path."""
    return generate_shapes(tmp_path_factory.mktemp("shapes"), "train", 60, seed=0)
