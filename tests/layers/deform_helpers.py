"""Inputs and loop-by-loop expectations for the deformable attention module tests.

The naive expectations below do their own bilinear interpolation (pixel centres at
``(i + 0.5) / size``, zero outside the map) in float64, one sampled point at a time, from the
module's parameters and the documented layouts; they share no code with the modules or ops.
"""

from __future__ import annotations

import math

import pytest
import torch

from detr_efficient.layers import KeyAwareDeformableAttention, MultiScaleDeformableAttention

# use_reference: True runs ops.reference, False the kernel op.
PATHS = [pytest.param(True, id="reference"), pytest.param(False, id="kernel")]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def level_layout(shapes: list[tuple[int, int]], device="cpu"):
    """``spatial_shapes`` int64 ``[L, 2]``, ``level_start_index`` int64 ``[L]`` and S."""
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64, device=device)
    sizes = [h * w for h, w in shapes]
    starts = torch.tensor([sum(sizes[:i]) for i in range(len(sizes))], device=device)
    return spatial_shapes, starts, sum(sizes)


def make_inputs(
    embed_dim: int,
    shapes: list[tuple[int, int]],
    batch: int = 2,
    queries: int = 5,
    ref_dim: int = 2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    interior: bool = False,
) -> dict:
    """Keyword arguments for ``forward`` (batch first), with query_pos and a padding mask.

    ``interior``: reference points in [0.3, 0.7], so bilinear corners stay inside maps of
    size >= 3.
    """
    generator = torch.Generator().manual_seed(seed)
    spatial_shapes, starts, tokens = level_layout(shapes)
    levels = len(shapes)
    if interior:
        centres = 0.3 + 0.4 * torch.rand(batch, queries, levels, 2, generator=generator)
    else:
        centres = torch.rand(batch, queries, levels, 2, generator=generator)
    if ref_dim == 4:
        sizes = 0.05 + 0.5 * torch.rand(batch, queries, levels, 2, generator=generator)
        reference_points = torch.cat([centres, sizes], dim=-1)
    else:
        reference_points = centres
    mask = torch.zeros(batch, tokens, dtype=torch.bool)
    mask[0, tokens - 4 :] = True  # image 0 is padded at the end of the last level
    return {
        "query": torch.randn(batch, queries, embed_dim, generator=generator).to(dtype),
        "value": torch.randn(batch, tokens, embed_dim, generator=generator).to(dtype),
        "query_pos": torch.randn(batch, queries, embed_dim, generator=generator).to(dtype),
        "reference_points": reference_points.to(dtype),
        "spatial_shapes": spatial_shapes,
        "level_start_index": starts,
        "key_padding_mask": mask,
    }


def randomize(module: torch.nn.Module, seed: int = 0, offset_scale: float = 0.5) -> None:
    """Random parameters everywhere (offsets of a few pixels), deterministic per seed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            scale = offset_scale if name.startswith("sampling_offsets") else 0.3
            noise = torch.randn(parameter.shape, generator=generator) * scale
            parameter.copy_(noise.to(parameter.dtype))


def bilinear(feature: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample ``feature`` ``[H, W, D]`` at normalised (x, y): corners outside count as 0."""
    height, width = feature.shape[:2]
    px, py = x * width - 0.5, y * height - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = feature.new_zeros(feature.shape[2])
    for yi in (y0, y0 + 1):
        for xi in (x0, x0 + 1):
            if 0 <= xi < width and 0 <= yi < height:
                out += (1 - abs(px - xi)) * (1 - abs(py - yi)) * feature[yi, xi]
    return out


def _linear(params: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def _location(reference: torch.Tensor, offset: torch.Tensor, height, width, points):
    if reference.shape[0] == 2:
        return float(reference[0] + offset[0] / width), float(reference[1] + offset[1] / height)
    x = reference[0] + offset[0] / points * reference[2] * 0.5
    y = reference[1] + offset[1] / points * reference[3] * 0.5
    return float(x), float(y)


def _samples(module, params, inputs):
    """Per (b, q, h): the list of (key sample, value sample) over levels and points, and the
    projected query (position added) and value."""
    p = params
    heads, levels, points = module.num_heads, module.num_levels, module.num_points
    query = inputs["query"].double()
    if inputs.get("query_pos") is not None:
        query = query + inputs["query_pos"].double()
    value_in = inputs["value"].double()
    value = _linear(p, "value_proj", value_in)
    key = _linear(p, "key_proj", value_in) if "key_proj.weight" in p else value
    mask = inputs.get("key_padding_mask")
    if mask is not None:
        value = value.masked_fill(mask[..., None], 0.0)
        key = key.masked_fill(mask[..., None], 0.0)
    batch, queries, _ = query.shape
    offsets = _linear(p, "sampling_offsets", query).reshape(
        batch, queries, heads, levels, points, 2
    )
    channels = value.shape[-1] // heads
    shapes = inputs["spatial_shapes"].tolist()
    starts = inputs["level_start_index"].tolist()
    reference_points = inputs["reference_points"].double()
    samples = {}
    for b in range(batch):
        for q in range(queries):
            for h in range(heads):
                heads_slice = slice(h * channels, (h + 1) * channels)
                found = []
                for level, ((height, width), start) in enumerate(zip(shapes, starts, strict=True)):
                    rows = slice(start, start + height * width)
                    value_map = value[b, rows, heads_slice].reshape(height, width, channels)
                    key_map = key[b, rows, heads_slice].reshape(height, width, channels)
                    for point in range(points):
                        x, y = _location(
                            reference_points[b, q, level],
                            offsets[b, q, h, level, point],
                            height,
                            width,
                            points,
                        )
                        found.append((bilinear(key_map, x, y), bilinear(value_map, x, y)))
                samples[b, q, h] = found
    return samples, query, value.shape[-1], channels


def _finish(module, params, inputs, attended):
    identity = inputs.get("identity")
    identity = inputs["query"].double() if identity is None else identity.double()
    return identity + _linear(params, "output_proj", attended)


def naive_ms_deform_attn(module, inputs: dict) -> torch.Tensor:
    """``MultiScaleDeformableAttention`` (batch first, no dropout) point by point."""
    params = {k: v.detach().double() for k, v in module.state_dict().items()}
    samples, query, value_dim, channels = _samples(module, params, inputs)
    batch, queries, _ = query.shape
    logits = _linear(params, "attention_weights", query).reshape(
        batch, queries, module.num_heads, -1
    )
    weights = logits.softmax(dim=-1)
    attended = torch.zeros(batch, queries, value_dim, dtype=torch.float64)
    for (b, q, h), found in samples.items():
        for i, (_, value_sample) in enumerate(found):
            attended[b, q, h * channels : (h + 1) * channels] += weights[b, q, h, i] * value_sample
    return _finish(module, params, inputs, attended)


def naive_key_aware_attn(module, inputs: dict) -> torch.Tensor:
    """``KeyAwareDeformableAttention`` (batch first, no dropout) point by point."""
    params = {k: v.detach().double() for k, v in module.state_dict().items()}
    samples, query, value_dim, channels = _samples(module, params, inputs)
    projected_query = _linear(params, "query_proj", query)
    batch, queries, _ = query.shape
    attended = torch.zeros(batch, queries, value_dim, dtype=torch.float64)
    for (b, q, h), found in samples.items():
        head = slice(h * channels, (h + 1) * channels)
        keys = torch.stack([k for k, _ in found])  # [L * P, D]
        values = torch.stack([v for _, v in found])
        weights = (keys @ projected_query[b, q, head] / math.sqrt(channels)).softmax(dim=0)
        attended[b, q, head] = weights @ values
    return _finish(module, params, inputs, attended)


NAIVE = {
    MultiScaleDeformableAttention: naive_ms_deform_attn,
    KeyAwareDeformableAttention: naive_key_aware_attn,
}
