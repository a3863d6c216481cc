#!/usr/bin/env python
"""One small call of every CUDA kernel, for compute-sanitizer (see tools/gpu_check.sh)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detr_efficient.ops import nms  # noqa: E402
from detr_efficient.ops.reference import nms_reference  # noqa: E402


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(150, 2, generator=generator) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(150, 2, generator=generator) * 20], dim=1)
    scores = torch.rand(150, generator=generator)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        kept = nms(boxes.to("cuda", dtype), scores.to("cuda", dtype), 0.5).cpu()
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        expected = nms_reference(boxes.to(dtype).to(compute), scores.to(dtype).to(compute), 0.5)
        assert torch.equal(kept, expected), (dtype, kept, expected)
        print(dtype, "kept", len(kept), "of", len(boxes), "as the reference")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
