#!/usr/bin/env python
"""One small call of every CUDA kernel, checked against the CPU kernels, for
compute-sanitizer (see tools/gpu_check.sh)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detr_efficient.ops import (  # noqa: E402
    batched_nms,
    gather_tokens_many,
    nms,
    scatter_tokens,
    select_topk,
)


def same_on_gpu(name, fn, *args):
    """Run ``fn`` on CPU and GPU copies of ``args`` and require identical results."""
    on_cpu = fn(*args)
    on_gpu = fn(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
    on_cpu = on_cpu if isinstance(on_cpu, (list, tuple)) else [on_cpu]
    on_gpu = on_gpu if isinstance(on_gpu, (list, tuple)) else [on_gpu]
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert torch.equal(cpu, gpu.cpu()), name
    print(f"{name}: CPU and GPU agree")


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(3, 150, 2, generator=generator) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(3, 150, 2, generator=generator) * 20], 2)
    scores = torch.rand(3, 150, generator=generator)
    valid = torch.rand(3, 150, generator=generator) > 0.2
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        b, s = boxes.to(dtype), scores.to(dtype)
        same_on_gpu(f"nms {dtype}", lambda x, y: nms(x[0], y[0], 0.5), b, s)
        same_on_gpu(
            f"batched_nms {dtype}", lambda x, y, v: batched_nms(x, y, 0.5, v, 40), b, s, valid
        )
        same_on_gpu(f"select_topk {dtype}", lambda y, v: select_topk(y, 37, v), s, valid)
    tokens = torch.randn(3, 150, 40, generator=generator)
    positions = torch.randn(3, 150, 4, 2, generator=generator).half()
    index = select_topk(scores, 60, valid)
    same_on_gpu(
        "gather_tokens", lambda t, p, i: gather_tokens_many([t, p], i), tokens, positions, index
    )
    src = torch.randn(3, index.shape[1], 40, generator=generator)
    same_on_gpu("scatter_tokens", scatter_tokens, tokens, index, src)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
