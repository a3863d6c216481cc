"""The dataset grid renderer."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detr_efficient.data import CLASS_NAMES, DatasetError, draw_dataset_grid, load_coco_json_checked
from detr_efficient.data.visualize import class_colour


def test_grid_of_shapes(shapes_json, tmp_path):
    dicts = load_coco_json_checked(shapes_json, shapes_json.parent.parent / "train")
    out = draw_dataset_grid(
        dicts, CLASS_NAMES, tmp_path / "sub" / "grid.png", num_images=5, cols=3, cell_size=128
    )
    with Image.open(out) as f:
        assert (f.format, f.size) == ("PNG", (3 * 128, 2 * 128))
        grid = np.asarray(f.convert("RGB"))
    # the sixth tile is empty background; every class drawn in the first five has its colour
    assert (grid[128:, 256:] == 32).all()
    drawn = {a["category_id"] for d in dicts[:5] for a in d["annotations"]}
    for category in drawn:
        assert (grid == class_colour(category)).all(axis=-1).sum() > 20


def test_grid_rejects_empty_input_and_missing_images(tmp_path):
    with pytest.raises(ValueError):
        draw_dataset_grid([], CLASS_NAMES, tmp_path / "grid.png")
    record = {"file_name": str(tmp_path / "gone.jpg"), "annotations": []}
    with pytest.raises(DatasetError, match="gone.jpg"):
        draw_dataset_grid([record], CLASS_NAMES, tmp_path / "grid.png")
