#!/usr/bin/env python
"""Run a detector on image files or folders: one visualised PNG per image and one
COCO-format results JSON.

    tools/predict.py --config-file configs/dino/dino_shapes_cpu.py --checkpoint model.pth \\
        --input img.jpg folder/ --output out/ [--score-threshold 0.3] \\
        [--dataset-name shapes_val] [--device cpu] [key=value ...]

Images are read and resized by the config's test mapper (``dataloader.test.mapper``, e.g.
``DetrDatasetMapper(is_train=False, ...)``; the default ``DetrDatasetMapper(is_train=False)``
where the config has none). Class names and dataset category ids come from the metadata of
``--dataset-name`` (default: the config's ``dataloader.test.dataset.names`` when it is one
registered name). Detections scoring below ``--score-threshold`` are left out of both
outputs. ``<output>/predictions.json`` holds ``[{"file_name", "image_id" (the image's index
in the sorted input list), "category_id", "bbox": [x, y, w, h], "score"}]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageFont

from detr_efficient.data import DetrDatasetMapper
from detr_efficient.data.visualize import class_colour
from detr_efficient.evaluation import model_analysis as ma

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
RESULTS_FILE = "predictions.json"
logger = logging.getLogger("detr_efficient.predict")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, help="LazyConfig defining 'model'")
    parser.add_argument("--checkpoint", required=True, help="weights (DetectionCheckpointer)")
    parser.add_argument("--input", nargs="+", required=True, help="image files or folders")
    parser.add_argument("--output", required=True, help="folder for the PNGs and the JSON")
    parser.add_argument("--score-threshold", type=float, default=0.3)
    parser.add_argument("--dataset-name", help="registered dataset for class names and ids")
    add_device_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    # "--input a.jpg key=value" reads the overrides into --input: hand them back.
    args.opts = [p for p in args.input if "=" in p and not Path(p).exists()] + args.opts
    args.input = [p for p in args.input if p not in args.opts]
    if not args.input:
        parser.error("--input: no image file or folder given")
    if not 0.0 <= args.score_threshold <= 1.0:
        parser.error(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    check_device(parser, args.device)
    return args


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``, by default CUDA where there is one and the CPU otherwise."""
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default, help=f"default {default}")


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """A clear ``parser.error`` for a CUDA ``device`` on a machine without one."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {device}: no CUDA device is available")


def collect_images(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for image suffixes; sorted, unique."""
    images: list[Path] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"--input {entry}: no image files in this folder")
            images.extend(found)
        elif path.is_file():
            images.append(path)
        else:
            raise FileNotFoundError(f"--input {entry}: no such file or folder")
    return list(dict.fromkeys(images))


def build_mapper(cfg):
    """The config's test mapper, or ``DetrDatasetMapper(is_train=False)``."""
    mapper = OmegaConf.select(cfg, "dataloader.test.mapper", default=None)
    if mapper is None:
        logger.warning("config has no dataloader.test.mapper: using DetrDatasetMapper defaults")
        return DetrDatasetMapper(is_train=False)
    return instantiate(mapper)


def resolve_dataset_name(cfg, name: str | None) -> str | None:
    """``name``, else the config's single test dataset name; must be registered."""
    if name is None:
        names = OmegaConf.select(cfg, "dataloader.test.dataset.names", default=None)
        name = names if isinstance(names, str) else None
        if name is None:
            return None
    if name not in MetadataCatalog.list() and name not in DatasetCatalog.list():
        raise KeyError(f"--dataset-name {name}: not a registered dataset")
    return name


class CategoryMap:
    """Class names and contiguous id → dataset category id, from dataset metadata."""

    def __init__(self, dataset_name: str | None) -> None:
        self.name = dataset_name
        self.metadata = MetadataCatalog.get(dataset_name) if dataset_name else None
        self.classes = self.metadata.get("thing_classes", None) if self.metadata else None
        forward = self.metadata.get("thing_dataset_id_to_contiguous_id", None)
        self.to_dataset = {v: k for k, v in forward.items()} if forward else None

    def check(self, classes: torch.Tensor, file_name: str) -> None:
        if self.classes is not None and len(classes) and int(classes.max()) >= len(self.classes):
            raise ValueError(
                f"{file_name}: the model predicts class {int(classes.max())} but dataset "
                f"{self.name} has {len(self.classes)} classes (check --dataset-name)"
            )

    def dataset_id(self, contiguous: int) -> int:
        if self.to_dataset is None:
            return contiguous
        return self.to_dataset[contiguous]


def draw_predictions(image, instances, class_names=None) -> Image.Image:
    """Boxes with "name score" labels on the (H, W, 3) RGB ``image``, drawn with PIL
    (Detectron2's ``Visualizer`` needs OpenCV, which this project does not install)."""
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    boxes = instances.pred_boxes.tensor.tolist()
    for box, score, label in zip(
        boxes, instances.scores.tolist(), instances.pred_classes.tolist(), strict=True
    ):
        colour = class_colour(label)
        draw.rectangle(box, outline=colour, width=2)
        name = class_names[label] if class_names is not None else str(label)
        text = f"{name} {score:.2f}"
        draw.rectangle(draw.textbbox(box[:2], text, font=font), fill=colour)
        draw.text(box[:2], text, fill=(0, 0, 0), font=font)
    return canvas


def _png_name(image: Path, used: set[str]) -> str:
    name, index = f"{image.stem}.png", 1
    while name in used:
        name, index = f"{image.stem}_{index}.png", index + 1
    used.add(name)
    return name


@torch.no_grad()
def predict(args: argparse.Namespace) -> list[dict]:
    images = collect_images(args.input)
    if not Path(args.checkpoint).is_file() and "://" not in args.checkpoint:
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: no such file")
    cfg = ma.load_config(args.config_file, args.opts)
    model = ma.build_inference_model(cfg, args.device, args.checkpoint)
    mapper = build_mapper(cfg)
    categories = CategoryMap(resolve_dataset_name(cfg, args.dataset_name))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    results: list[dict] = []
    used: set[str] = set()
    for image_id, path in enumerate(images):
        inputs = mapper({"file_name": str(path), "image_id": image_id})  # reads and resizes
        inputs["image"] = inputs["image"].to(args.device)
        instances = model([inputs])[0]["instances"].to("cpu")
        instances = instances[instances.scores >= args.score_threshold]
        categories.check(instances.pred_classes, str(path))

        rgb = read_image(str(path), format="RGB")
        png = output / _png_name(path, used)
        draw_predictions(rgb, instances, categories.classes).save(png)

        boxes = instances.pred_boxes.tensor.tolist()
        for (x0, y0, x1, y1), score, label in zip(
            boxes, instances.scores.tolist(), instances.pred_classes.tolist(), strict=True
        ):
            results.append(
                {
                    "file_name": str(path),
                    "image_id": image_id,
                    "category_id": categories.dataset_id(label),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                }
            )
        logger.info("%s: %d detections -> %s", path, len(instances), png)
    (output / RESULTS_FILE).write_text(json.dumps(results) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger

    for name in ("detr_efficient", "detectron2", "fvcore"):
        setup_logger(name=name)
    try:
        results = predict(args)
    except (OSError, KeyError, ValueError) as e:  # missing/unreadable files, bad names
        raise SystemExit(f"error: {e}") from e
    print(f"{len(results)} detections written to {Path(args.output) / RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
