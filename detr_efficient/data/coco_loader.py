"""Checked loader: a COCO instances json → Detectron2 dataset dicts, or a clear DatasetError."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode

__all__ = ["DatasetError", "load_coco_json_checked"]

logger = logging.getLogger(__name__)

_REQUIRED_KEYS = ("images", "annotations", "categories")


class DatasetError(ValueError):
    """Malformed dataset input; the message names the file and the offending field/record."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path) -> dict:
    """Parse ``path`` and check the top-level structure."""
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise DatasetError(f"{path}: missing top-level key(s) {', '.join(map(repr, missing))}")
    for key in _REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise DatasetError(f"{path}: top-level key '{key}' must be a list")
    for key in ("images", "categories"):
        if not data[key]:
            raise DatasetError(f"{path}: '{key}' is empty")
    return data


def _check_categories(path: Path, categories: list) -> dict[int, str]:
    """{dataset category id: name}, in ascending id order."""
    names = {}
    for i, cat in enumerate(categories):
        where = f"{path}: categories[{i}]"
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise DatasetError(f"{where}: field 'id' must be an integer")
        if not isinstance(cat.get("name"), str):
            raise DatasetError(f"{where} (id={cat['id']}): field 'name' must be a string")
        if cat["id"] in names:
            raise DatasetError(f"{where}: duplicate category id {cat['id']}")
        names[cat["id"]] = cat["name"]
    return dict(sorted(names.items()))


def _check_images(path: Path, images: list) -> dict[int, dict]:
    """{image id: image record}, in file order."""
    by_id = {}
    for i, im in enumerate(images):
        where = f"{path}: images[{i}]"
        if not isinstance(im, dict) or not _is_int(im.get("id")):
            raise DatasetError(f"{where}: field 'id' must be an integer")
        where += f" (id={im['id']})"
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise DatasetError(f"{where}: field 'file_name' must be a non-empty string")
        for key in ("height", "width"):
            if not _is_int(im.get(key)) or im[key] <= 0:
                raise DatasetError(f"{where}: field '{key}' must be a positive integer")
        if im["id"] in by_id:
            raise DatasetError(f"{where}: duplicate image id")
        by_id[im["id"]] = im
    return by_id


def _check_annotation(path: Path, i: int, ann, images: dict, categories: dict) -> None:
    where = f"{path}: annotations[{i}]"
    if not isinstance(ann, dict) or not _is_int(ann.get("id")):
        raise DatasetError(f"{where}: field 'id' must be an integer")
    where += f" (id={ann['id']})"
    for key, known in (("image_id", images), ("category_id", categories)):
        if not _is_int(ann.get(key)) or ann[key] not in known:
            raise DatasetError(f"{where}: field '{key}' = {ann.get(key)!r} is not a known id")
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_is_number, bbox)):
        raise DatasetError(f"{where}: field 'bbox' must be 4 finite numbers, got {bbox!r}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise DatasetError(f"{where}: field 'bbox' has a negative width/height: {bbox!r}")
    if ann.get("iscrowd", 0) not in (0, 1):
        raise DatasetError(f"{where}: field 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")


def _check_metadata(path: Path, dataset_name: str, categories: dict[int, str]) -> None:
    """Set the category metadata of ``dataset_name``, or check it against the json's."""
    meta = MetadataCatalog.get(dataset_name)
    id_map = {cat_id: k for k, cat_id in enumerate(categories)}
    classes = list(categories.values())
    if not hasattr(meta, "thing_dataset_id_to_contiguous_id"):
        meta.set(thing_classes=classes, thing_dataset_id_to_contiguous_id=id_map)
    elif meta.thing_dataset_id_to_contiguous_id != id_map or list(meta.thing_classes) != classes:
        raise DatasetError(
            f"{path}: field 'categories' does not match the registered metadata of "
            f"{dataset_name!r} (json: {categories})"
        )


def load_coco_json_checked(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
) -> list[dict]:
    """Load a COCO instances json into Detectron2 dataset dicts, validating everything.

    Returns one dict per json image (same order, images without annotations included):
    ``file_name`` (``image_root/file_name``), ``height``, ``width``, ``image_id`` and
    ``annotations``: dicts with ``bbox`` [x, y, w, h] (``bbox_mode`` XYWH_ABS),
    ``category_id`` (contiguous, in ascending json id order) and ``iscrowd``. Crowd boxes are
    kept (the training mapper drops them); boxes with zero width or height are dropped, counted
    and logged. With ``dataset_name``, its ``thing_classes`` and
    ``thing_dataset_id_to_contiguous_id`` are set, or checked if already set.

    Raises ``DatasetError`` naming the file and field for: a missing or non-JSON file, missing
    top-level keys, empty ``images``/``categories``, malformed image/category/annotation
    records (bad bbox, unknown image_id/category_id, duplicate ids) and image files missing
    under ``image_root``.
    """
    path = Path(json_file)
    image_root = Path(image_root)
    data = _read_json(path)
    categories = _check_categories(path, data["categories"])
    images = _check_images(path, data["images"])
    missing = [
        im["file_name"] for im in images.values() if not (image_root / im["file_name"]).is_file()
    ]
    if missing:
        raise DatasetError(
            f"{path}: {len(missing)} image file(s) named in 'images' do not exist under "
            f"{image_root}, e.g. {missing[:3]}"
        )
    if dataset_name is not None:
        _check_metadata(path, dataset_name, categories)
    contiguous = {cat_id: k for k, cat_id in enumerate(categories)}
    per_image = {image_id: [] for image_id in images}
    seen, num_empty, num_crowd = set(), 0, 0
    for i, ann in enumerate(data["annotations"]):
        _check_annotation(path, i, ann, images, categories)
        if ann["id"] in seen:
            raise DatasetError(f"{path}: annotations[{i}]: duplicate annotation id {ann['id']}")
        seen.add(ann["id"])
        if ann["bbox"][2] == 0 or ann["bbox"][3] == 0:
            num_empty += 1
            continue
        num_crowd += ann.get("iscrowd", 0)
        per_image[ann["image_id"]].append(
            {
                "bbox": [float(v) for v in ann["bbox"]],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": contiguous[ann["category_id"]],
                "iscrowd": int(ann.get("iscrowd", 0)),
            }
        )
    if num_empty:
        logger.warning("%s: dropped %d zero-width/height box(es)", path, num_empty)
    logger.info(
        "Loaded %d images, %d boxes (%d crowd) from %s",
        len(images),
        len(seen) - num_empty,
        num_crowd,
        path,
    )
    return [
        {
            "file_name": str(image_root / im["file_name"]),
            "height": im["height"],
            "width": im["width"],
            "image_id": image_id,
            "annotations": per_image[image_id],
        }
        for image_id, im in images.items()
    ]
