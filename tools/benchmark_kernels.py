#!/usr/bin/env python
"""Benchmark detr_efficient's kernels side by side with their alternatives, in one run.

Prints a table (median time per call and the ratio of each alternative to ours) and writes
JSON with the device, versions and every measurement. Needs torch only (torchvision rows are
skipped where it is missing), so it runs on a bare GPU machine.

    python tools/benchmark_kernels.py --device cpu --output results/benchmarks
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detr_efficient.ops import compiled_cuda_version, nms  # noqa: E402
from detr_efficient.ops.reference import nms_reference  # noqa: E402

try:
    import torchvision
except ImportError:  # a bare GPU image may have torch only
    torchvision = None


@dataclass
class Row:
    op: str
    shape: str
    variant: str
    median_ms: float
    ratio_to_ours: float | None = None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn`` in ms, synchronising the device around every call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def detector_like_boxes(n: int, device: torch.device, seed: int = 0):
    """Boxes ``[n, 4]`` clustered around n/20 objects, as a dense head outputs; scores ``[n]``."""
    generator = torch.Generator().manual_seed(seed)
    objects = max(1, n // 20)
    centre = torch.rand(objects, 2, generator=generator) * 1000
    size = 16 + torch.rand(objects, 2, generator=generator) * 300
    owner = torch.randint(0, objects, (n,), generator=generator)
    jitter = 1 + 0.25 * torch.randn(n, 4, generator=generator)
    half = size[owner] / 2
    lo = centre[owner] - half * jitter[:, :2].abs()
    hi = centre[owner] + half * jitter[:, 2:].abs()
    scores = torch.rand(n, generator=generator)
    return torch.cat([lo, hi], dim=1).to(device), scores.to(device)


def bench_nms(device: torch.device, sizes: list[int], repeats: int, warmup: int) -> list[Row]:
    rows = []
    for n in sizes:
        boxes, scores = detector_like_boxes(n, device)
        variants = {"ours": lambda b=boxes, s=scores: nms(b, s, 0.7)}
        if torchvision is not None:
            variants["torchvision.ops.nms"] = lambda b=boxes, s=scores: torchvision.ops.nms(
                b, s, 0.7
            )
        if n <= 2000:
            variants["pytorch reference"] = lambda b=boxes, s=scores: nms_reference(b, s, 0.7)
        expected = variants["ours"]()
        if torchvision is not None:
            assert torch.equal(expected, variants["torchvision.ops.nms"]()), "keep sets differ"
        timings = {name: median_ms(fn, device, repeats, warmup) for name, fn in variants.items()}
        for name, ms in timings.items():
            rows.append(Row("nms", f"N={n}", name, ms, ms / timings["ours"]))
    return rows


def environment(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "torchvision": getattr(torchvision, "__version__", None),
        "compiled_cuda_version": compiled_cuda_version(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def print_table(rows: list[Row]) -> None:
    header = f"{'op':<8} {'shape':<12} {'variant':<24} {'median ms':>11} {'x ours':>8}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.ratio_to_ours:.2f}" if row.ratio_to_ours is not None else ""
        print(f"{row.op:<8} {row.shape:<12} {row.variant:<24} {row.median_ms:>11.3f} {ratio:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--nms-sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    rows = bench_nms(device, args.nms_sizes, args.repeats, args.warmup)
    print_table(rows)
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / f"kernels_{device.type}.json"
    payload = {"environment": environment(device), "rows": [asdict(r) for r in rows]}
    out.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
