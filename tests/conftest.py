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
def shared_data_root():
    """The real COCO subsets (``DETR_EFFICIENT_DATA``, default ``<repo>/../shared/data``)."""
    import os
    from pathlib import Path

    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    root = Path(os.environ.get("DETR_EFFICIENT_DATA", default))
    if not (root / "coco_tiny").is_dir():
        pytest.skip(f"shared COCO subsets not found under {root}")
    return root
