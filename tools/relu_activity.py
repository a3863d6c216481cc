#!/usr/bin/env python
"""Report how many hidden ReLU units of a detector's MLPs and FFNs are alive, over a few
images of a registered dataset: for each hidden layer, the share of its outputs above zero
and the share of its units above zero for at least one query or token. Units that never
fire get no gradient: a head whose units died predicts the same for every input.

    tools/relu_activity.py --config-file configs/dino/dino_shapes_cpu.py \\
        [--checkpoint output/dino_shapes_cpu/model_final.pth] [--dataset shapes_val] \\
        [--num-images 8] [--json activity.json] [--device cpu] [key=value ...]

Without ``--checkpoint`` the model is the freshly initialised one (seed 0), which gives the
shares to compare a trained model with. The images go through the config's test mapper;
the dataset defaults to the config's test dataset.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch
from detectron2.data import DatasetCatalog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402
from predict import (  # noqa: E402
    add_device_argument,
    build_mapper,
    check_device,
    resolve_dataset_name,
)

from detr_efficient.evaluation import model_analysis as ma  # noqa: E402
from detr_efficient.evaluation import relu_activity  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, help="LazyConfig defining 'model'")
    parser.add_argument("--checkpoint", help="weights; default: the initialised model")
    parser.add_argument("--dataset", help="registered dataset; default: the config's test one")
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--json", help="also write the rows here")
    add_device_argument(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f"--num-images must be >= 1, got {args.num_images}")
    check_device(parser, args.device)
    return args


def print_table(rows: list, title: str) -> None:
    print(title)
    print(f"{'hidden layer':<48} {'units':>6} {'rows':>8} {'> 0':>6} {'alive':>6}")
    for row in rows:
        if math.isnan(row.alive):
            print(f"{row.name:<48} {row.units:>6} {row.rows:>8}   (not run)")
            continue
        print(f"{row.name:<48} {row.units:>6} {row.rows:>8} {row.positive:>6.0%} {row.alive:>6.0%}")


def json_row(row) -> dict:
    """A ``HiddenActivity`` as a JSON object; NaN shares (a layer not run) become null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in vars(row).items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = ma.load_config(args.config_file, args.opts)
    name = resolve_dataset_name(cfg, args.dataset)
    if name is None:
        raise SystemExit("--dataset: the config names no single test dataset; pass one")
    records = DatasetCatalog.get(name)[: args.num_images]
    if not records:
        raise SystemExit(f"--dataset {name}: the dataset holds no image")
    torch.manual_seed(0)
    model = ma.build_inference_model(cfg, args.device, args.checkpoint)
    mapper = build_mapper(cfg)
    batches = ([mapper(dict(record))] for record in records)
    rows = relu_activity(model, batches)
    weights = args.checkpoint or "the initialised model (seed 0)"
    print_table(rows, f"{args.config_file}: {weights}, {len(records)} images of {name}")
    if args.json:
        payload = {
            "config": args.config_file,
            "checkpoint": args.checkpoint,
            "dataset": name,
            "images": len(records),
            "layers": [json_row(row) for row in rows],
        }
        write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
