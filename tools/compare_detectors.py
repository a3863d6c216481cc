#!/usr/bin/env python
"""Detectors side by side in one run: parameters, GFLOPs (total and encoder), encoder tokens
updated, and inference latency at batch 1 measured round-robin (each round times every model
once, so machine noise hits all of them alike), with ratios to the first config; with
--train-iters, also training s/iter and peak memory at --train-batch images.

    tools/compare_detectors.py --configs configs/dino/dino_r50_4scale_12ep.py \\
        configs/focus_detr/focus_detr_r50_4scale_12ep.py [--size 850 1040] [--device cuda] \\
        [--rounds 5] [--iters 5] [--no-flops] [--train-iters 5] [--json out.json] \\
        [--variant dino-pytorch-attention configs/dino/dino_r50_4scale_12ep.py \\
            model.encoder.layer.self_attn.use_reference=True ...]

``--variant LABEL CONFIG [KEY=VALUE ...]`` (repeatable) adds a config with overrides, shown
as LABEL, after the ``--configs``.

Random weights (no checkpoint is loaded): speed and flops do not depend on them, except that
token-selecting detectors always keep the same number of tokens. A DETRDistill model's
teacher is random too: it is marked loaded for the training steps, which only time it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402

from detr_efficient.evaluation import model_analysis as ma  # noqa: E402

TRAIN_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", nargs="+", default=[], help="LazyConfigs with 'model'")
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar="ARG",
        help="LABEL CONFIG [KEY=VALUE ...]: a labelled config with overrides (repeatable)",
    )
    parser.add_argument("--size", nargs=2, type=int, default=list(ma.PROTOCOL_SIZE))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin timing rounds")
    parser.add_argument("--iters", type=int, default=3, help="timed runs per model per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore traces")
    parser.add_argument(
        "--train-iters", type=int, default=0, help="timed training steps per model (0: none)"
    )
    parser.add_argument("--train-batch", type=int, default=2, help="images per training step")
    parser.add_argument(
        "--train-precision",
        nargs="+",
        choices=sorted(TRAIN_PRECISIONS),
        default=["fp32"],
        help="training steps in fp32 and/or under bf16 autocast",
    )
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.iters < 1 or args.warmup < 0:
        parser.error("--rounds and --iters must be >= 1, --warmup >= 0")
    if args.train_iters < 0 or args.train_batch < 1:
        parser.error("--train-iters must be >= 0 and --train-batch >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is available")
    args.models = [(config, config, []) for config in args.configs]
    for variant in args.variant:
        if len(variant) < 2 or any("=" not in override for override in variant[2:]):
            parser.error(f"--variant {' '.join(variant)}: needs LABEL CONFIG [KEY=VALUE ...]")
        args.models.append((variant[0], variant[1], variant[2:]))
    if not args.models:
        parser.error("give --configs and/or --variant")
    for label, config, _ in args.models:
        if not Path(config).is_file():
            parser.error(f"{label}: config {config}: no such file")
    return args


def add_training_steps(
    rows: list[dict], models: list, args: argparse.Namespace, progress: Callable[[list], None]
) -> None:
    """Training s/iter and peak memory of each model, in each of ``args.train_precision``,
    with one model on the device at a time so that its peak memory is its own; ``progress``
    gets the rows after each model."""
    for model in models:
        model.to("cpu")
    for row, model in zip(rows, models, strict=True):
        if hasattr(model, "teacher_ready"):  # DETRDistill: its random teacher, for timing only
            model.teacher_ready.fill_(True)
        model.to(args.device)
        batch = ma.dummy_training_inputs(
            args.train_batch, tuple(args.size), model.num_classes, args.device
        )
        for precision in args.train_precision:
            stats = ma.measure_training_step(
                model, batch, args.warmup, args.train_iters, TRAIN_PRECISIONS[precision]
            )
            row[f"train_s_per_iter_{precision}"] = stats["seconds_per_iter"]
            row[f"train_peak_memory_mb_{precision}"] = stats["peak_memory_mb"]
        model.to("cpu")
        progress(rows)


def compare(args: argparse.Namespace, progress: Callable[[list], None]) -> list[dict]:
    """One row per model: size, GFLOPs, kept tokens, latency and FPS (models interleaved
    round by round), then training steps; ``progress`` gets the rows once the inference
    numbers are in and after each model's training steps."""
    inputs = ma.dummy_inputs(1, tuple(args.size), args.device)
    models, rows = [], []
    for label, config, overrides in args.models:
        torch.manual_seed(0)
        model = ma.build_inference_model(ma.load_config(config, overrides), args.device)
        row = {
            "config": label,
            "config_file": config,
            "overrides": overrides,
            "params_m": ma.count_parameters(model)["total"] / 1e6,
        }
        if not args.no_flops:
            report = ma.analyze_flops(model, (inputs,))
            row["gflops"] = report.total / 1e9
            row["encoder_gflops"] = report.by_module.get("encoder", 0) / 1e9
        row["tokens_updated"] = None  # detectors without a transformer encoder (DDQ-FCN)
        if hasattr(model, "encode_sparse") or hasattr(model, "token_map"):
            with torch.no_grad():
                row["tokens_updated"] = ma.encoder_token_counts(model, inputs)["kept_fraction"]
        models.append(model)
        rows.append(row)
    for model in models:
        ma.measure_speed(model, inputs, args.warmup, 1)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(args.rounds):
        for i, model in enumerate(models):
            times[i].append(ma.measure_speed(model, inputs, 0, args.iters)["seconds_per_iter"])
    for row, samples in zip(rows, times, strict=True):
        row["latency_ms"] = statistics.median(samples) * 1e3
        row["fps"] = 1e3 / row["latency_ms"]
    add_ratios(rows)
    progress(rows)
    if args.train_iters:
        add_training_steps(rows, models, args, progress)
    return rows


def add_ratios(rows: list[dict]) -> None:
    """FPS and GFLOPs of each row relative to the first."""
    base = rows[0]
    for row in rows:
        row["fps_ratio"] = row["fps"] / base["fps"]
        if "gflops" in row:
            row["gflops_ratio"] = row["gflops"] / base["gflops"]
            base_encoder = base["encoder_gflops"]
            row["encoder_gflops_ratio"] = (
                row["encoder_gflops"] / base_encoder if base_encoder else None
            )


def format_table(rows: list[dict]) -> str:
    columns = [
        ("config", "config", "{}"),
        ("params_m", "params M", "{:.2f}"),
        ("gflops", "GFLOPs", "{:.1f}"),
        ("gflops_ratio", "x", "{:.3f}"),
        ("encoder_gflops", "enc GFLOPs", "{:.1f}"),
        ("encoder_gflops_ratio", "x", "{:.3f}"),
        ("tokens_updated", "tokens", "{:.3f}"),
        ("latency_ms", "ms", "{:.1f}"),
        ("fps_ratio", "FPS x", "{:.3f}"),
    ]
    for precision in TRAIN_PRECISIONS:
        columns.append((f"train_s_per_iter_{precision}", f"train s/it {precision}", "{:.3f}"))
        columns.append((f"train_peak_memory_mb_{precision}", f"MiB {precision}", "{:.0f}"))
    columns = [c for c in columns if c[0] in rows[0]]
    cells = [[title for _, title, _ in columns]]
    for row in rows:
        cells.append(
            [fmt.format(row[key]) if row[key] is not None else "—" for key, _, fmt in columns]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def save(rows: list[dict]) -> None:  # as it goes: a run stopped later keeps these rows
        if args.json:
            result = {"size": args.size, "device": args.device, "rounds": args.rounds}
            write_json(args.json, {**result, "rows": rows})

    rows = compare(args, save)
    print(
        f"input 3x{args.size[0]}x{args.size[1]}, device {args.device}, batch 1; "
        "ratios vs the first row"
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
