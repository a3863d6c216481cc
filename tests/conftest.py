"""Shared test setup: ``gpu`` tests skip cleanly where no CUDA device is present."""

import pytest
import torch

import detr_efficient  # noqa: F401  (first: its compat fixes must precede any Detectron2 import)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """The real COCO subsets root (``detr_efficient.data.data_root()``); skips where absent."""
    from detr_efficient.data.paths import data_root  # imports Detectron2: not for tests/ops

    root = data_root()
    if not ((root / "coco_tiny").is_dir() and (root / "coco128").is_dir()):
        pytest.skip(f"shared COCO subsets not found under {root} (set DETR_EFFICIENT_DATA)")
    return root
