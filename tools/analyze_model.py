#!/usr/bin/env python
"""Parameters, GFLOPs and speed of a detector built from a LazyConfig.

    tools/analyze_model.py --config-file configs/dino/dino_r50_4scale_12ep.py \\
        --tasks params flops speed tokens [--size 850 1040] [--device cpu] [--json out.json] \\
        [key=value ...]

The model is ``instantiate(cfg.model)`` in eval mode, with ``train.init_checkpoint`` loaded
when the config sets one (override ``train.init_checkpoint=""`` to analyse random weights).
Flops follow fvcore (one multiply-add = 1 flop) with the handles of
``detr_efficient.evaluation.model_analysis`` for the custom ops, on random uint8 images of
``--size`` (default 3 x 850 x 1040, the protocol of the papers' tables), averaged over
``--num-inputs`` images. Speed: images per second at batch 1 under ``no_grad``. Tokens: how
many encoder tokens each layer updates (all valid ones, or a token-selecting detector's
kept set).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402

from detr_efficient.evaluation import model_analysis as ma  # noqa: E402

TASKS = ("params", "flops", "speed", "tokens")
logger = logging.getLogger("detr_efficient.analyze_model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, help="LazyConfig defining 'model'")
    parser.add_argument(
        "--tasks", nargs="+", default=list(TASKS), help=f"any of {', '.join(TASKS)} (default all)"
    )
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument(
        "--size", nargs=2, type=int, default=list(ma.PROTOCOL_SIZE), metavar=("H", "W")
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--num-inputs", type=int, default=1, help="images the flop count is averaged over"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    parser.add_argument("--iters", type=int, default=10, help="timed runs")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    # "--tasks params key=value" reads the overrides into --tasks: hand them back.
    args.opts = [t for t in args.tasks if "=" in t] + args.opts
    args.tasks = [t for t in args.tasks if "=" not in t]
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown or not args.tasks:
        parser.error(f"--tasks: unknown {unknown or 'none given'}; choose from {list(TASKS)}")
    if args.num_inputs <= 0:
        parser.error(f"--num-inputs must be positive, got {args.num_inputs}")
    if min(args.size) <= 0:
        parser.error(f"--size must be positive, got {args.size}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available")
    return args


def _giga(n: float) -> float:
    return n / 1e9


def analyze_flops(model, size, num_inputs: int, device: str) -> dict:
    """GFLOPs averaged over ``num_inputs`` random images (batch 1): total, per top-level
    child, the encoder module(s), per operator, and the ops no handle counted."""
    totals: dict[str, float] = {}
    operators: dict[str, float] = {}
    unsupported: dict[str, int] = {}
    for seed in range(num_inputs):
        report = ma.analyze_flops(model, ma.dummy_inputs(1, tuple(size), device, seed))
        for name, n in report.by_module.items():
            totals[name] = totals.get(name, 0.0) + n / num_inputs
        for name, n in report.by_operator.items():
            operators[name] = operators.get(name, 0.0) + n / num_inputs
        for name, n in report.unsupported.items():
            unsupported[name] = max(unsupported.get(name, 0), n)
    return {
        "total_gflops": _giga(totals.get("", 0.0)),
        "by_child_gflops": {k: _giga(v) for k, v in ma.top_level_flops(totals).items()},
        "encoder_gflops": {k: _giga(v) for k, v in ma.encoder_flops(totals).items()},
        "by_operator_gflops": {k: _giga(v) for k, v in operators.items()},
        "uncounted_ops": unsupported,
        "num_inputs": num_inputs,
    }


def run(args: argparse.Namespace) -> dict:
    cfg = ma.load_config(args.config_file, args.opts)
    checkpoint = OmegaConf.select(cfg, "train.init_checkpoint", default=None)
    # An init checkpoint may hold only the backbone: sizes and speed do not need the rest.
    model = ma.build_inference_model(
        cfg, args.device, checkpoint or None, require_every_weight=False
    )
    result = {
        "config_file": args.config_file,
        "overrides": list(args.opts),
        "checkpoint": checkpoint or None,
        "device": args.device,
        "input_size": [3, *args.size],
    }
    if "params" in args.tasks:
        result["params"] = ma.count_parameters(model)
    if "flops" in args.tasks:
        result["flops"] = analyze_flops(model, args.size, args.num_inputs, args.device)
    if "tokens" in args.tasks:
        inputs = ma.dummy_inputs(1, tuple(args.size), args.device)
        result["tokens"] = ma.encoder_token_counts(model, inputs)
    if "speed" in args.tasks:
        inputs = ma.dummy_inputs(1, tuple(args.size), args.device)
        result["speed"] = ma.measure_speed(model, inputs, args.warmup, args.iters)
    return result


def format_table(result: dict) -> str:
    """The results as an aligned text table."""
    rows: list[tuple[str, str]] = [("input", "x".join(map(str, result["input_size"])))]
    if "params" in result:
        params = result["params"]
        rows.append(("params total (M)", f"{params['total'] / 1e6:.2f}"))
        rows.append(("params trainable (M)", f"{params['trainable'] / 1e6:.2f}"))
        for name, n in params["by_child"].items():
            rows.append((f"  params {name or '(own)'} (M)", f"{n / 1e6:.3f}"))
    if "flops" in result:
        flops = result["flops"]
        rows.append(("GFLOPs total", f"{flops['total_gflops']:.2f}"))
        for name, g in flops["by_child_gflops"].items():
            rows.append((f"  GFLOPs {name}", f"{g:.2f}"))
        for name, g in flops["encoder_gflops"].items():
            rows.append((f"GFLOPs encoder [{name}]", f"{g:.2f}"))
        if not flops["encoder_gflops"]:
            rows.append(("GFLOPs encoder", "no module named *encoder*"))
    if "tokens" in result:
        tokens = result["tokens"]
        rows.append(("encoder tokens (valid)", f"{tokens['tokens']} ({tokens['valid'][0]})"))
        per_layer = " ".join(str(layer[0]) for layer in tokens["kept_per_layer"])
        rows.append(("  updated per layer", per_layer))
        rows.append(("  mean fraction updated", f"{tokens['kept_fraction']:.3f}"))
    if "speed" in result:
        speed = result["speed"]
        label = f"FPS ({speed['device']}, batch {speed['images_per_iter']})"
        rows.append((label, f"{speed['fps']:.2f}"))
        rows.append(("latency (ms)", f"{speed['seconds_per_iter'] * 1e3:.1f}"))
        rows.append(("peak memory (MiB)", f"{speed['peak_memory_mb']:.1f}"))
        rows.append(("  memory measured as", speed["memory_source"]))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    uncounted = result.get("flops", {}).get("uncounted_ops")
    if uncounted:
        lines.append("ops not counted: " + ", ".join(f"{k} x{v}" for k, v in uncounted.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger

    for name in ("detr_efficient", "detectron2", "fvcore"):
        setup_logger(name=name)
    result = run(args)
    print(format_table(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
