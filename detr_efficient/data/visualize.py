"""Render dataset dicts with their ground-truth boxes into one PNG grid (PIL, no GUI)."""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Sequence
from pathlib import Path

from detectron2.structures import BoxMode
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .coco_loader import DatasetError

__all__ = ["class_colour", "draw_dataset_grid"]

_BACKGROUND = (32, 32, 32)
_CROWD = (160, 160, 160)


def class_colour(index: int) -> tuple[int, int, int]:
    """A bright RGB colour for contiguous class ``index`` (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.85, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def _cell(record: dict, class_names: Sequence[str], cell_size: int, font) -> Image.Image:
    """One (cell_size, cell_size) tile: the image fitted inside, boxes and labels drawn."""
    try:
        with Image.open(record["file_name"]) as f:
            image = ImageOps.exif_transpose(f).convert("RGB")
    except OSError as e:
        raise DatasetError(f"{record['file_name']}: cannot read image: {e}") from e
    scale = cell_size / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    tile = Image.new("RGB", (cell_size, cell_size), _BACKGROUND)
    tile.paste(image.resize(size, Image.Resampling.BILINEAR), (0, 0))
    draw = ImageDraw.Draw(tile)
    for ann in record.get("annotations", []):
        x0, y0, x1, y1 = (
            v * scale for v in BoxMode.convert(ann["bbox"], ann["bbox_mode"], BoxMode.XYXY_ABS)
        )
        crowd = bool(ann.get("iscrowd", 0))
        colour = _CROWD if crowd else class_colour(ann["category_id"])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=1 if crowd else 2)
        label = "crowd" if crowd else class_names[ann["category_id"]]
        tx0, ty0, tx1, ty1 = draw.textbbox((x0, y0), label, font=font)
        draw.rectangle((tx0, ty0, tx1, ty1), fill=colour)
        draw.text((x0, y0), label, fill=(0, 0, 0), font=font)
    return tile


def draw_dataset_grid(
    dataset_dicts: Sequence[dict],
    class_names: Sequence[str],
    out_png: str | os.PathLike,
    num_images: int = 16,
    cols: int = 4,
    cell_size: int = 256,
) -> Path:
    """Draw the first ``num_images`` dataset dicts (Detectron2 format, contiguous
    ``category_id``) as a grid of ``cols`` columns of (cell_size x cell_size) tiles, each image
    fitted into its tile with its boxes and class names; crowd boxes are thin grey. Writes a
    (rows * cell_size, cols * cell_size) RGB PNG and returns its path."""
    records = list(dataset_dicts[:num_images])
    if not records:
        raise ValueError("draw_dataset_grid: no dataset dicts to draw")
    cols = min(cols, len(records))
    rows = math.ceil(len(records) / cols)
    grid = Image.new("RGB", (cols * cell_size, rows * cell_size), _BACKGROUND)
    font = ImageFont.load_default()
    for i, record in enumerate(records):
        grid.paste(
            _cell(record, class_names, cell_size, font),
            ((i % cols) * cell_size, (i // cols) * cell_size),
        )
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out_png, format="PNG")
    return out_png
