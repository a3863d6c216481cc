"""Registration of the shapes and real-COCO-subset datasets in Detectron2's catalogs.

Names registered by ``register_all`` (run on ``import detr_efficient.data``):

- ``shapes_train`` (2000 images, seed 1) and ``shapes_val`` (200 images, seed 2), 256x256,
  generated on the first ``DatasetCatalog.get`` into ``<cache_dir()>/shapes_256x256``;
- ``coco_tiny_train``, ``coco_tiny_val``, ``coco128_train`` under ``data_root()``.

Detectron2's own COCO names (``coco_2017_*`` under ``$DETECTRON2_DATASETS``) are untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import _get_builtin_metadata

from .coco_loader import load_coco_json_checked
from .paths import cache_dir, data_root
from .shapes import CLASS_NAMES, generate_shapes

__all__ = ["COCO_SUBSETS", "SHAPES_SPLITS", "register_all", "register_coco", "register_shapes"]

# name: (split, num_images, seed)
SHAPES_SPLITS = {"shapes_train": ("train", 2000, 1), "shapes_val": ("val", 200, 2)}
SHAPES_IMAGE_SIZE = (256, 256)

# name: (image root, json file), relative to data_root()
COCO_SUBSETS = {
    "coco_tiny_train": ("coco_tiny/train2017", "coco_tiny/annotations/instances_train2017.json"),
    "coco_tiny_val": ("coco_tiny/val2017", "coco_tiny/annotations/instances_val2017.json"),
    "coco128_train": ("coco128/train2017", "coco128/annotations/instances_train2017.json"),
}


def _register(name: str, loader, **metadata) -> None:
    """Register (or replace) ``name`` with a lazy ``loader`` and fresh metadata."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(evaluator_type="coco", **metadata)


def register_coco(
    name: str, json_file: str | os.PathLike, image_root: str | os.PathLike, **metadata
) -> None:
    """Register a COCO-format dataset read by ``load_coco_json_checked``; idempotent.

    ``metadata`` (e.g. ``thing_classes`` and ``thing_dataset_id_to_contiguous_id``) is set
    now; category metadata left out is taken from the json on first load.
    """
    json_file, image_root = str(json_file), str(image_root)
    _register(
        name,
        lambda: load_coco_json_checked(json_file, image_root, name),
        json_file=json_file,
        image_root=image_root,
        **metadata,
    )


def register_shapes(
    name: str,
    root: str | os.PathLike,
    split: str,
    num_images: int,
    seed: int,
    image_size: tuple[int, int] = SHAPES_IMAGE_SIZE,
    **params,
) -> None:
    """Register a shapes split generated lazily (see ``generate_shapes``) into ``root``."""
    root = Path(root)
    image_root = root / split

    def load():
        json_file = generate_shapes(root, split, num_images, image_size, seed, **params)
        return load_coco_json_checked(json_file, image_root, name)

    _register(
        name,
        load,
        json_file=str(root / "annotations" / f"instances_{split}.json"),
        image_root=str(image_root),
        thing_classes=list(CLASS_NAMES),
        thing_dataset_id_to_contiguous_id={k + 1: k for k in range(len(CLASS_NAMES))},
    )


def register_all(
    cache: str | os.PathLike | None = None, data: str | os.PathLike | None = None
) -> None:
    """Register all default names (idempotent).

    ``cache`` and ``data`` default to ``cache_dir()`` and ``data_root()``.
    """
    h, w = SHAPES_IMAGE_SIZE
    shapes_root = Path(cache if cache is not None else cache_dir()) / f"shapes_{h}x{w}"
    for name, (split, num_images, seed) in SHAPES_SPLITS.items():
        register_shapes(name, shapes_root, split, num_images, seed)
    data = Path(data if data is not None else data_root())
    coco_meta = _get_builtin_metadata("coco")
    for name, (image_root, json_file) in COCO_SUBSETS.items():
        register_coco(
            name,
            data / json_file,
            data / image_root,
            thing_classes=coco_meta["thing_classes"],
            thing_dataset_id_to_contiguous_id=coco_meta["thing_dataset_id_to_contiguous_id"],
            thing_colors=coco_meta["thing_colors"],
        )
