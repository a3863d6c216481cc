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
    key_aware_deform_attn,
    ms_deform_attn,
    nms,
    scatter_tokens,
    select_topk,
)


def same_on_gpu(name, fn, *args, tolerance=None):
    """Run ``fn`` on CPU and GPU copies of ``args``; require identical results (or within
    ``tolerance`` of the largest magnitude, for floating-point sums, whose order differs)."""
    on_cpu = fn(*args)
    on_gpu = fn(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in args])
    on_cpu = on_cpu if isinstance(on_cpu, (list, tuple)) else [on_cpu]
    on_gpu = on_gpu if isinstance(on_gpu, (list, tuple)) else [on_gpu]
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        if tolerance is None:
            assert torch.equal(cpu, gpu.cpu()), name
        else:
            scale = max(1.0, cpu.abs().max().item())
            torch.testing.assert_close(
                gpu.cpu(), cpu, rtol=tolerance, atol=tolerance * scale, msg=name
            )
    print(f"{name}: CPU and GPU agree")


def deform_attention(generator, dtype, channels, tolerance):
    """Both attention ops, forward and backward, with locations partly outside the maps."""
    shapes = torch.tensor([[8, 10], [4, 5], [2, 3], [1, 2]])
    starts = torch.tensor([0, 80, 100, 106])
    value = torch.randn(2, 108, 3, channels, generator=generator).to(dtype)
    query = torch.randn(2, 17, 3, channels, generator=generator).to(dtype)
    locations = torch.rand(2, 17, 3, 4, 3, 2, generator=generator) * 1.4 - 0.2
    weights = torch.rand(2, 17, 3, 4, 3, generator=generator)

    def msda(v, s, i, loc, w):
        v, loc, w = (t.clone().requires_grad_(True) for t in (v, loc, w))
        out = ms_deform_attn(v, s, i, loc, w)
        out.square().sum().backward()
        return [out, v.grad, loc.grad, w.grad]

    def kda(q, v, s, i, loc):
        q, v, loc = (t.clone().requires_grad_(True) for t in (q, v, loc))
        out = key_aware_deform_attn(q, v, v, s, i, loc)
        out.square().sum().backward()
        return [out, q.grad, v.grad, loc.grad]

    case = f"{dtype} D={channels}"
    args = (value, shapes, starts, locations, weights)
    same_on_gpu(f"ms_deform_attn {case}", msda, *args, tolerance=tolerance)
    args = (query, value, shapes, starts, locations)
    same_on_gpu(f"key_aware_deform_attn {case}", kda, *args, tolerance=tolerance)


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
    # CUDA lane layouts: 16-byte vectors held by groups of 4 (float16, D=8), 8 (bfloat16,
    # D=40), 16 (float32, D=40) and 32 lanes (float32, D=128), and one channel per lane in one
    # to four chunks (D=12 float16, D=33, 70, 126 float32).
    for dtype, channels, tolerance in [
        (torch.float16, 8, 5e-2),
        (torch.bfloat16, 40, 5e-2),
        (torch.float32, 40, 1e-4),
        (torch.float32, 128, 1e-4),
        (torch.float16, 12, 5e-2),
        (torch.float32, 33, 1e-4),
        (torch.float32, 70, 1e-4),
        (torch.float32, 126, 1e-4),
    ]:
        deform_attention(generator, dtype, channels, tolerance)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
