#!/usr/bin/env python
"""`make demo`: the embedded default end to end, on this machine.

1. Generates the synthetic shapes dataset (cached) and loads it through Detectron2's catalog.
2. Draws a grid of images with their ground-truth boxes into a PNG.
3. Trains small detectors from scratch on ``shapes_train`` with ``train_net.py`` (on the GPU
   when there is one), each run ending with a COCOEvaluator run on ``shapes_val``: Focus-DETR
   with DDQ-DETR's queries (``configs/combined/focus_ddq_detr_shapes_cpu.py``), Focus-DETR
   (``configs/focus_detr/focus_detr_shapes_cpu.py``) and the same-sized DINO
   (``configs/dino/dino_shapes_cpu.py``); ``--detectors`` picks some. Prints their AP tables
   side by side and draws the detections of the first validation images with
   ``tools/predict.py``. Finished runs are reused (``--resume``).
4. Draws, for one validation image, the tokens Focus-DETR's encoder keeps at each level
   (``tools/kept_tokens.py``) under the detectors' detections.
5. Runs the extension's class-agnostic NMS on detector-like boxes made from real annotations
   (every ground-truth box of ``shapes_val`` and of the real COCO subset, jittered many times
   and scored by its overlap with the truth, plus low-scored clutter), checks the keep set
   against torchvision, and reports how well NMS recovers one box per object.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch
import torchvision
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402
from training_summary import read_metrics  # noqa: E402

from detr_efficient.data import DatasetError, draw_dataset_grid  # noqa: E402  (registers them)
from detr_efficient.ops import nms  # noqa: E402
from detr_efficient.ops.reference import box_iou  # noqa: E402


def ground_truth_boxes(record: dict) -> torch.Tensor:
    """Non-crowd ground-truth boxes of a dataset dict, ``[G, 4]`` xyxy."""
    boxes = [
        BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
        for a in record["annotations"]
        if not a.get("iscrowd", 0)
    ]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def detector_like(truth: torch.Tensor, image_size, copies: int, clutter: int, generator):
    """Jittered copies of each true box scored by IoU with it, plus random low-scored boxes."""
    height, width = image_size
    size = (truth[:, 2:] - truth[:, :2]).repeat_interleave(copies, 0)
    noise = 0.15 * torch.randn(len(size), 4, generator=generator) * size.repeat(1, 2)
    jittered = truth.repeat_interleave(copies, 0) + noise
    overlap = box_iou(jittered, truth).max(dim=1).values.nan_to_num(0.0)
    scores = overlap * (0.7 + 0.3 * torch.rand(len(jittered), generator=generator))
    corner = torch.rand(clutter, 2, generator=generator) * torch.tensor([width, height])
    extent = 4 + torch.rand(clutter, 2, generator=generator) * 0.3 * min(height, width)
    background = torch.cat([corner, corner + extent], dim=1)
    boxes = torch.cat([jittered, background])
    scores = torch.cat([scores, 0.3 * torch.rand(clutter, generator=generator)])
    return boxes, scores


def nms_on_dataset(name: str, records: list[dict], threshold: float, copies: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    totals = {"images": 0, "objects": 0, "candidates": 0, "kept": 0, "recovered": 0, "ms": 0.0}
    for record in records:
        truth = ground_truth_boxes(record)
        if len(truth) == 0:
            continue
        image_size = (record["height"], record["width"])
        boxes, scores = detector_like(truth, image_size, copies, 10 * len(truth), generator)
        start = time.perf_counter()
        kept = nms(boxes, scores, threshold)
        totals["ms"] += (time.perf_counter() - start) * 1e3
        if not torch.equal(kept, torchvision.ops.nms(boxes, scores, threshold)):
            raise AssertionError(
                f"{name}: keep set differs from torchvision on {record['file_name']}"
            )
        confident = kept[scores[kept] > 0.5]
        best = box_iou(truth, boxes[confident]).max(dim=1).values if len(confident) else None
        totals["images"] += 1
        totals["objects"] += len(truth)
        totals["candidates"] += len(boxes)
        totals["kept"] += len(confident)
        totals["recovered"] += int((best >= 0.5).sum()) if best is not None else 0
    return {
        "dataset": name,
        **totals,
        "recall@0.5": totals["recovered"] / max(totals["objects"], 1),
        "kept_per_object": totals["kept"] / max(totals["objects"], 1),
    }


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'dataset':<16} {'images':>6} {'objects':>8} {'candidates':>10} "
        f"{'kept>0.5':>9} {'kept/obj':>8} {'recall@.5':>9} {'NMS ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['dataset']:<16} {r['images']:>6} {r['objects']:>8} {r['candidates']:>10} "
            f"{r['kept']:>9} {r['kept_per_object']:>8.2f} {r['recall@0.5']:>9.3f} {r['ms']:>8.1f}"
        )


REPO = Path(__file__).resolve().parents[1]
DETECTORS = {
    "focus_ddq_detr": REPO / "configs/combined/focus_ddq_detr_shapes_cpu.py",
    "focus_detr": REPO / "configs/focus_detr/focus_detr_shapes_cpu.py",
    "dino": REPO / "configs/dino/dino_shapes_cpu.py",
}
NAMES = {"focus_ddq_detr": "Focus-DDQ-DETR", "focus_detr": "Focus-DETR", "dino": "DINO"}
TRAINING_TIME = re.compile(r"Overall training speed: \d+ iterations in (\d+):(\d+):(\d+)")
WITH_SELECTOR = ("focus_detr", "focus_ddq_detr")  # the detectors kept_tokens.py can draw


def train_detector(config: Path, output: Path, device: str, overrides: list[str]) -> None:
    """Train (or resume) with train_net.py."""
    command = [
        sys.executable,
        str(REPO / "train_net.py"),
        "--config-file",
        str(config),
        "--resume",
        f"train.output_dir={output}",
        f"train.device={device}",
        *overrides,
    ]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def training_minutes(output: Path) -> float | None:
    """The training time Detectron2 logged for the run that trained ``output`` (a reused,
    finished run keeps its original time), or None when none was logged."""
    log = output / "log.txt"
    found = TRAINING_TIME.findall(log.read_text()) if log.is_file() else []
    if not found:
        return None
    hours, minutes, seconds = map(int, found[-1])
    return hours * 60 + minutes + seconds / 60


def final_metrics(output: Path) -> dict:
    """The last ``bbox/*`` evaluation entry of ``metrics.json`` (per-class APs included)."""
    _, evaluation = read_metrics(output)
    if not evaluation:
        raise RuntimeError(f"{output / 'metrics.json'}: no bbox evaluation was recorded")
    return {k.split("/", 1)[1]: v for k, v in evaluation[-1].items() if k.startswith("bbox/")}


def draw_detections(
    config: Path, checkpoint: Path, records: list[dict], output: Path, name: str
) -> Path:
    """tools/predict.py on the first images of ``records`` into ``output/predictions_<name>``,
    tiled into one PNG."""
    folder = output / f"predictions_{name}"
    command = [
        sys.executable,
        str(REPO / "tools/predict.py"),
        "--config-file",
        str(config),
        "--checkpoint",
        str(checkpoint),
        "--output",
        str(folder),
        "--score-threshold",
        "0.2",
        "--input",
        *[r["file_name"] for r in records],
    ]
    subprocess.run(command, check=True)
    tiles = [Image.open(folder / f"{Path(r['file_name']).stem}.png") for r in records]
    width, height = tiles[0].size
    columns = 4
    rows = (len(tiles) + columns - 1) // columns
    grid = Image.new("RGB", (columns * width, rows * height), "white")
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % columns) * width, (i // columns) * height))
    path = output / f"shapes_val_detections_{name}.png"
    grid.save(path)
    return path


def draw_kept_tokens(config: Path, checkpoint: Path, record: dict, output: Path, names) -> Path:
    """The detections of each detector in ``names`` on ``record``'s image side by side, above
    the tokens Focus-DETR's encoder keeps per level (``tools/kept_tokens.py``)."""
    tokens_png = output / "kept_tokens_levels.png"
    command = [
        sys.executable,
        str(REPO / "tools/kept_tokens.py"),
        "--config-file",
        str(config),
        "--checkpoint",
        str(checkpoint),
        "--input",
        record["file_name"],
        "--output",
        str(tokens_png),
    ]
    subprocess.run(command, check=True)
    stem = Path(record["file_name"]).stem
    detections = [Image.open(output / f"predictions_{n}" / f"{stem}.png") for n in names]
    levels = Image.open(tokens_png)
    font = ImageFont.load_default()
    for name, tile in zip(names, detections, strict=True):
        ImageDraw.Draw(tile).text((3, 3), NAMES[name], fill=(255, 255, 255), font=font)
    top_width = sum(t.width for t in detections)
    picture = Image.new(
        "RGB", (max(top_width, levels.width), detections[0].height + levels.height), "white"
    )
    x = 0
    for tile in detections:
        picture.paste(tile, (x, 0))
        x += tile.width
    picture.paste(levels, (0, detections[0].height))
    path = output / "focus_detr_kept_tokens.png"
    picture.save(path)
    return path


def detector_list(text: str) -> list[str]:
    """``--detectors``: comma-separated names of ``DETECTORS``, in the order to train them."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DETECTORS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown detector(s) {unknown or text!r}; choose from {', '.join(DETECTORS)}"
        )
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("output/demo"))
    parser.add_argument("--iou-threshold", type=float, default=0.5)
    parser.add_argument("--copies", type=int, default=30, help="jittered candidates per object")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--detectors",
        type=detector_list,
        default=list(DETECTORS),
        help=f"comma-separated small detectors to train (default: {','.join(DETECTORS)})",
    )
    parser.add_argument("overrides", nargs="*", help="train_net.py overrides, key=value")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    train = DatasetCatalog.get("shapes_train")
    val = DatasetCatalog.get("shapes_val")
    seconds = time.perf_counter() - start
    print(f"shapes_train: {len(train)} images, shapes_val: {len(val)} images ({seconds:.1f} s)")
    classes = MetadataCatalog.get("shapes_val").thing_classes
    grid = draw_dataset_grid(val, classes, args.output / "shapes_val_ground_truth.png", 12)
    print(f"wrote {grid}")

    names = list(dict.fromkeys(args.detectors))
    summary = {}
    for name in names:
        folder = (args.output / f"{name}_shapes").resolve()
        train_detector(DETECTORS[name], folder, args.device, args.overrides)
        summary[name] = {
            "config": str(DETECTORS[name].relative_to(REPO)),
            "training_minutes": training_minutes(folder),
            "device": args.device,
            "bbox": final_metrics(folder),
        }
        picture = draw_detections(
            DETECTORS[name], folder / "model_final.pth", val[:8], args.output, name
        )
        print(f"wrote {picture}")
    print("\nsmall detectors on shapes_val (finished runs are reused, not retrained):")
    keys = [k for k in summary[names[0]]["bbox"] if "-" not in k]
    print(f"{'detector':<15} {'train min':>9} " + " ".join(f"{k:>6}" for k in keys))
    for name, entry in summary.items():
        values = " ".join(f"{entry['bbox'][k]:>6.1f}" for k in keys)
        minutes = entry["training_minutes"]
        shown = "—" if minutes is None else f"{minutes:.1f}"
        print(f"{NAMES[name]:<15} {shown:>9} {values}")
    selecting = [n for n in names if n in WITH_SELECTOR]
    if selecting:
        folder = (args.output / f"{selecting[0]}_shapes").resolve()
        picture = draw_kept_tokens(
            DETECTORS[selecting[0]], folder / "model_final.pth", val[0], args.output, names
        )
        print(f"wrote {picture} (tokens kept by the first / last encoder layer, per level)")
    write_json(args.output / "detector_summary.json", summary)

    rows = [nms_on_dataset("shapes_val", val, args.iou_threshold, args.copies)]
    try:
        rows.append(
            nms_on_dataset(
                "coco_tiny_val",
                DatasetCatalog.get("coco_tiny_val"),
                args.iou_threshold,
                args.copies,
            )
        )
    except DatasetError as missing:  # the shared COCO subsets are not on this machine
        print(f"skipping coco_tiny_val: {missing}")
    print(
        f"\nclass-agnostic NMS (IoU {args.iou_threshold}), identical to torchvision on every image:"
    )
    print_table(rows)
    write_json(args.output / "nms_summary.json", rows)


if __name__ == "__main__":
    main()
