#!/usr/bin/env python
"""Benchmark detr_efficient's kernels side by side with their alternatives, in one run.

Prints a table (median time per call and the ratio of each alternative to ours) and writes
JSON with the device, versions and every measurement. Needs torch only (torchvision rows are
skipped where it is missing), so it runs on a bare GPU machine.

    python tools/benchmark_kernels.py --device cpu --output results/benchmarks
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_output import write_json  # noqa: E402

from detr_efficient.ops import (  # noqa: E402
    batched_nms,
    compiled_cuda_version,
    deform_attn_threads_per_block,
    gather_tokens_many,
    key_aware_deform_attn,
    ms_deform_attn,
    scatter_tokens,
    select_topk,
)
from detr_efficient.ops.deform_attn import THREADS_PER_BLOCK_CHOICES  # noqa: E402
from detr_efficient.ops.reference import (  # noqa: E402
    key_aware_deform_attn_reference,
    ms_deform_attn_reference,
)

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
    gb_per_s: float | None = None  # minimal bytes moved / time
    of_copy_bandwidth: float | None = None  # gb_per_s / the device's measured copy bandwidth


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


def timed_variants(op, shape, variants, device, repeats, warmup) -> list[Row]:
    """Time every variant side by side; ratios are relative to the one named "ours"."""
    timings = {name: median_ms(fn, device, repeats, warmup) for name, fn in variants.items()}
    return [Row(op, shape, name, ms, ms / timings["ours"]) for name, ms in timings.items()]


def check_keep_sets(keep, boxes, scores, threshold) -> None:
    """Assert that each image's keep mask ``[B, N]`` is torchvision's CPU NMS keep set, the
    exact one; print on how many images torchvision's CUDA kernel keeps another set (it
    compares IoU with a float threshold and may fuse multiply-adds, so boxes at the threshold
    can go either way)."""
    differs = 0
    for i in range(len(boxes)):
        ours = keep[i].nonzero()[:, 0].cpu()
        expected = torchvision.ops.nms(boxes[i].cpu(), scores[i].cpu(), threshold)
        assert torch.equal(ours, expected.sort().values), f"image {i}: keep sets differ"
        if boxes.is_cuda:
            on_device = torchvision.ops.nms(boxes[i], scores[i], threshold).cpu()
            differs += not torch.equal(ours, on_device.sort().values)
    if boxes.is_cuda:
        print(
            f"nms B={len(boxes)} N={boxes.shape[1]}: keep sets equal torchvision's CPU NMS; "
            f"torchvision's CUDA NMS keeps another set on {differs} of {len(boxes)} images"
        )


def bench_nms(device: torch.device, sizes: list[int], batches: list[int], repeats, warmup):
    """Per-image class-agnostic NMS at IoU 0.7: ours (one batched launch) vs torchvision."""
    rows = []
    for batch in batches:
        for n in sizes:
            pairs = [detector_like_boxes(n, device, seed=b) for b in range(batch)]
            boxes = torch.stack([p[0] for p in pairs])
            scores = torch.stack([p[1] for p in pairs])
            variants = {"ours": lambda b=boxes, s=scores: batched_nms(b, s, 0.7)}
            if torchvision is not None:
                image_of = torch.arange(batch, device=device).repeat_interleave(n)
                flat_boxes, flat_scores = boxes.reshape(-1, 4), scores.reshape(-1)
                variants["torchvision nms, loop"] = lambda b=boxes, s=scores: [
                    torchvision.ops.nms(b[i], s[i], 0.7) for i in range(len(b))
                ]
                variants["torchvision batched_nms"] = (
                    lambda b=flat_boxes, s=flat_scores, i=image_of: torchvision.ops.batched_nms(
                        b, s, i, 0.7
                    )
                )
                check_keep_sets(variants["ours"](), boxes, scores, 0.7)
            rows += timed_variants("nms", f"B={batch} N={n}", variants, device, repeats, warmup)
    return rows


def focus_tokens(batch, tokens, channels, device, seed=0):
    """Encoder tokens, positions, 4-level reference points, scores and a padding mask."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, channels, generator=generator)
    pos = torch.randn(batch, tokens, channels, generator=generator)
    ref = torch.rand(batch, tokens, 4, 2, generator=generator)
    scores = torch.randn(batch, tokens, generator=generator)
    valid = torch.ones(batch, tokens, dtype=torch.bool)
    valid[1:, int(tokens * 0.8) :] = False  # the other images are padded
    return [t.to(device) for t in (x, pos, ref, scores, valid)]


def select_gather_scatter_reference(x, pos, ref, scores, valid, ratio):
    """The usual code: topk, gather with repeat-ed indices, a per-image scatter loop."""
    counts = [int(c * ratio) + 1 for c in valid.sum(1).tolist()]
    index = torch.topk(scores.masked_fill(~valid, float("-inf")), max(counts), dim=1).indices
    gathered = [
        torch.gather(t.flatten(2), 1, index.unsqueeze(-1).repeat(1, 1, t.flatten(2).shape[2]))
        for t in (x, pos, ref)
    ]
    out = x.clone()
    for b, count in enumerate(counts):
        rows = index[b, :count].unsqueeze(-1).repeat(1, x.shape[2])
        out[b].scatter_(0, rows, gathered[0][b, :count])
    return out


def select_gather_scatter_ours(x, pos, ref, scores, valid, ratio):
    counts = (valid.sum(1) * ratio).long() + 1
    width = int(valid.shape[1] * ratio) + 1  # an upper bound known on the host: no sync
    index = select_topk(scores, counts, valid, max_k=width)
    selected, _, _ = gather_tokens_many([x, pos, ref], index, check_index=False)
    return scatter_tokens(x, index, selected, check_index=False)


def bench_tokens(device: torch.device, tokens: int, ratios: list[float], repeats, warmup):
    """Focus-DETR's per-layer select + gather (tokens, positions, reference points) + scatter."""
    x, pos, ref, scores, valid = focus_tokens(2, tokens, 256, device)
    rows = []
    for ratio in ratios:
        args = (x, pos, ref, scores, valid, ratio)
        ours, reference = select_gather_scatter_ours(*args), select_gather_scatter_reference(*args)
        assert torch.equal(ours, reference), "select/gather/scatter results differ"
        variants = {
            "ours": lambda a=args: select_gather_scatter_ours(*a),
            "topk+gather+loop": lambda a=args: select_gather_scatter_reference(*a),
        }
        rows += timed_variants(
            "tokens", f"N={tokens} k={ratio:.0%}", variants, device, repeats, warmup
        )
    return rows


def copy_bandwidth(device: torch.device) -> float:
    """The device's measured copy bandwidth in GB/s (read + write of a large tensor)."""
    elements = (256 if device.type == "cuda" else 32) * 2**20 // 4
    source = torch.ones(elements, device=device)
    target = torch.empty_like(source)
    ms = median_ms(lambda: target.copy_(source), device, repeats=10, warmup=2)
    return 2 * source.numel() * 4 / ms / 1e6


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """Feature-map sizes at strides 8, 16, 32, 64 of a height x width image."""
    return [(-(-height // stride), -(-width // stride)) for stride in (8, 16, 32, 64)]


def attention_inputs(image_hw, queries, dtype, device, batch, heads=8, channels=32, points=4):
    """Inputs of both attention ops at DINO's settings; ``queries=None`` means Q = S."""
    generator = torch.Generator().manual_seed(0)
    shapes = torch.tensor(level_shapes(*image_hw))
    sizes = shapes.prod(1)
    tokens = int(sizes.sum())
    queries = queries or tokens
    levels = len(shapes)

    def randn(*size):
        return torch.randn(*size, generator=generator).to(device, dtype)

    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=generator)
    weights = torch.rand(batch, queries, heads, levels, points, generator=generator).softmax(-1)
    return {
        "query": randn(batch, queries, heads, channels),
        "value": randn(batch, tokens, heads, channels),
        "spatial_shapes": shapes.to(device),
        "level_start_index": torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]]).to(device),
        "sampling_locations": locations.to(device),
        "attention_weights": weights.to(device),
    }


def minimal_bytes(inputs: dict, op: str) -> int:
    """Bytes a forward must move at least: read every input once, write the output."""
    query, value = inputs["query"], inputs["value"]
    needed = [value, inputs["sampling_locations"], query]  # output is query-sized
    needed.append(inputs["attention_weights"] if op == "msda" else query)
    return sum(t.numel() * t.element_size() for t in needed)


def off_16_bytes(t: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``t`` one element into its storage: the CUDA attention kernels then
    read one channel per lane instead of 16-byte vectors."""
    storage = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    return storage[1:].view_as(t).copy_(t)


def with_threads_per_block(threads: int, fn):
    """``fn`` run with the CUDA attention kernels launched at ``threads`` per block."""

    def call():
        previous = deform_attn_threads_per_block(threads)
        try:
            return fn()
        finally:
            deform_attn_threads_per_block(previous)

    return call


def attention_calls(op: str, inputs: dict, classic, block_sizes=()):
    """{variant: (forward, forward + backward)} callables for one op; on the GPU, ours also
    at each of ``block_sizes`` threads per block."""
    levels = (inputs["spatial_shapes"], inputs["level_start_index"])
    value, query = inputs["value"], inputs["query"]
    locations, weights = inputs["sampling_locations"], inputs["attention_weights"]
    leaves = [t.detach().requires_grad_(True) for t in (value, query, locations, weights)]
    unaligned = [off_16_bytes(value), off_16_bytes(query), locations, weights]
    unaligned_leaves = [t.detach().requires_grad_(True) for t in unaligned]

    def ours(v, q, loc, w):
        if op == "msda":
            return ms_deform_attn(v, *levels, loc, w)
        return key_aware_deform_attn(q, v, v, *levels, loc)

    def reference(v, q, loc, w):
        if op == "msda":
            return ms_deform_attn_reference(v, *levels, loc, w)
        return key_aware_deform_attn_reference(q, v, v, *levels, loc)

    def both(fn, args=leaves):
        return lambda: fn(*args).float().sum().backward()

    calls = {
        "ours": (lambda: ours(value, query, locations, weights), both(ours)),
        "pytorch reference": (lambda: reference(value, query, locations, weights), both(reference)),
    }
    if value.is_cuda:
        calls["ours, 1 channel/lane"] = (lambda: ours(*unaligned), both(ours, unaligned_leaves))
        for threads in block_sizes:
            forward, forward_backward = calls["ours"]
            calls[f"ours, {threads} threads/block"] = (
                with_threads_per_block(threads, forward),
                with_threads_per_block(threads, forward_backward),
            )
    if classic is not None and op == "msda" and value.dtype == torch.float32:
        grad = torch.ones(value.shape[0], locations.shape[1], value.shape[2] * value.shape[3])
        grad = grad.to(value.device)

        def classic_both():
            classic.forward(value, *levels, locations, weights)
            classic.backward(grad, value, *levels, locations, weights)

        calls["classic (thread/channel)"] = (
            lambda: classic.forward(value, *levels, locations, weights),
            classic_both,
        )
    return calls


def load_classic():
    """The classic one-thread-per-channel MSDA kernel (tools/classic_msda), built just in time."""
    from torch.utils.cpp_extension import load

    source = Path(__file__).resolve().parent / "classic_msda" / "classic_msda.cu"
    return load("classic_msda", [str(source)], extra_cuda_cflags=["-O3"], verbose=False)


def bench_attention(
    device, dtypes, image_hw, batch, repeats, warmup, classic, block_sizes=()
) -> list[Row]:
    """MSDA and KDA at encoder (Q = S) and decoder (Q = 1100) shapes: forward, backward and
    both, ours against the grid_sample reference (and, on the GPU, the classic kernel, our
    kernels made to read one channel per lane and ours at other ``block_sizes``)."""
    rows = []
    bandwidth = copy_bandwidth(device)
    for dtype in dtypes:
        for stage, queries in (("encoder", None), ("decoder", 1100)):
            inputs = attention_inputs(image_hw, queries, dtype, device, batch)
            tokens = inputs["value"].shape[1]
            shape = f"{stage} B={batch} S={tokens} {str(dtype).replace('torch.', '')}"
            for op in ("msda", "kda"):
                calls = attention_calls(op, inputs, classic, block_sizes)
                forward = {name: pair[0] for name, pair in calls.items()}
                both = {name: pair[1] for name, pair in calls.items()}
                forward_rows = timed_variants(f"{op} fwd", shape, forward, device, repeats, warmup)
                both_rows = timed_variants(f"{op} f+b", shape, both, device, repeats, warmup)
                for row in forward_rows:
                    row.gb_per_s = minimal_bytes(inputs, op) / row.median_ms / 1e6
                    row.of_copy_bandwidth = row.gb_per_s / bandwidth
                ours_bwd = both_rows[0].median_ms - forward_rows[0].median_ms
                backward_rows = [
                    Row(f"{op} bwd", shape, f.variant, b.median_ms - f.median_ms)
                    for f, b in zip(forward_rows, both_rows, strict=True)
                ]
                for row in backward_rows:
                    row.ratio_to_ours = row.median_ms / ours_bwd
                rows += forward_rows + backward_rows + both_rows
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
    header = (
        f"{'op':<9} {'shape':<27} {'variant':<25} {'median ms':>10} {'x ours':>7} "
        f"{'GB/s':>7} {'of copy':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.ratio_to_ours:.2f}" if row.ratio_to_ours is not None else ""
        gbps = f"{row.gb_per_s:.1f}" if row.gb_per_s is not None else ""
        share = f"{row.of_copy_bandwidth:.0%}" if row.of_copy_bandwidth is not None else ""
        print(
            f"{row.op:<9} {row.shape:<27} {row.variant:<25} {row.median_ms:>10.3f} {ratio:>7} "
            f"{gbps:>7} {share:>7}"
        )


def write_rows(path: Path, info: dict, rows: list[Row]) -> None:
    """Write ``{"environment": info, "rows": [...]}`` as JSON to ``path`` (its folder made)."""
    print()
    write_json(path, {"environment": info, "rows": [asdict(r) for r in rows]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=Path("results/benchmarks"))
    parser.add_argument(
        "--nms-sizes", type=int, nargs="+", help="default: 1k-30k on GPU, 1k-5k on CPU"
    )
    parser.add_argument("--nms-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=22000, help="encoder tokens per image")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument(
        "--image",
        type=int,
        nargs=2,
        help="attention input H W; default 800 1333 on GPU, 400 667 on CPU",
    )
    parser.add_argument(
        "--dtypes", nargs="+", help="attention dtypes; default float32 bfloat16 on GPU"
    )
    parser.add_argument("--attention-batch", type=int, help="default 2 on GPU, 1 on CPU")
    parser.add_argument(
        "--threads-per-block",
        type=int,
        nargs="+",
        default=[],
        choices=THREADS_PER_BLOCK_CHOICES,
        help="GPU: also time our attention kernels at these launch shapes (default 256 only)",
    )
    parser.add_argument("--only", nargs="+", choices=["nms", "tokens", "attention"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    nms_sizes = args.nms_sizes or ([1000, 5000, 20000, 30000] if gpu else [1000, 5000])
    only = set(args.only or ["nms", "tokens", "attention"])
    # The JSON is rewritten after each benchmark, so that a run stopped in the next one
    # keeps what it measured.
    path, info, rows = args.output / f"kernels_{device.type}.json", environment(device), []
    if "nms" in only:
        rows += bench_nms(device, nms_sizes, args.nms_batches, args.repeats, args.warmup)
        write_rows(path, info, rows)
    if "tokens" in only:
        rows += bench_tokens(device, args.tokens, args.ratios, args.repeats, args.warmup)
        write_rows(path, info, rows)
    if "attention" in only:
        image = args.image or ([800, 1333] if gpu else [400, 667])
        names = args.dtypes or (["float32", "bfloat16"] if gpu else ["float32"])
        dtypes = [getattr(torch, name) for name in names]
        batch = args.attention_batch or (2 if gpu else 1)
        classic = load_classic() if gpu else None
        rows += bench_attention(
            device, dtypes, image, batch, args.repeats, args.warmup, classic, args.threads_per_block
        )
        write_rows(path, info, rows)
    print_table(rows)


if __name__ == "__main__":
    main()
