"""Model analysis: parameter counts, fvcore flop counts with handles for the project's custom
ops, inference speed and peak memory, the dummy inputs of the analysis protocol, and building
an eval-mode model from a LazyConfig (used by ``tools/analyze_model.py`` and
``tools/predict.py``).

Flop convention (fvcore's): one multiply-add = 1 flop. Elementwise and reduction ops
(additions, softmax, sigmoid, ...) are not counted, as in Detectron2's analysis tool.

Counts of the custom ops, with ``N = B * Q * H * L * P`` sampled points and ``D`` channels
per head (``value`` is ``[B, S, H, D]``, ``sampling_locations`` ``[B, Q, H, L, P, 2]``):

- ``detr_efficient::ms_deform_attn``: each point bilinearly interpolates D channels from 4
  corners (4 multiply-adds per channel) and adds the result times its attention weight
  (1 multiply-add per channel): ``5 * N * D``.
- ``detr_efficient::key_aware_deform_attn``: the same sampling of the values plus the
  ``q · k`` logit of each point (``D`` multiply-adds): ``6 * N * D`` when the keys are the
  values themselves (Lite DETR's default; one interpolation serves both), and
  ``10 * N * D`` when a separate key tensor is sampled too (its own ``4 * N * D``).
  The softmax over the L * P points is not counted.

Two standard attention ops that fvcore leaves uncounted get handles as well:
``aten::scaled_dot_product_attention`` (``q k^T`` and ``attn v``) and
``aten::_native_multi_head_attention`` (the fast path of ``nn.MultiheadAttention`` in eval:
its input and output projections plus the two attention products).
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import os
import re
import resource
import sys
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from fvcore.nn.jit_handles import get_shape
from torch import nn

__all__ = [
    "EXTRA_OP_HANDLES",
    "IGNORED_OPS",
    "FlopReport",
    "analyze_flops",
    "build_inference_model",
    "count_flops",
    "count_parameters",
    "dummy_inputs",
    "encoder_flops",
    "encoder_token_counts",
    "key_aware_deform_attn_flops",
    "load_checkpoint",
    "load_config",
    "measure_speed",
    "ms_deform_attn_flops",
    "top_level_flops",
]

logger = logging.getLogger(__name__)

# The analysis protocol of SPEC §2 (Lite DETR's table): one 3 x 850 x 1040 image.
PROTOCOL_SIZE = (850, 1040)


# --------------------------------------------------------------------------- flop formulas


def ms_deform_attn_flops(
    batch: int, queries: int, heads: int, levels: int, points: int, channels: int
) -> int:
    """Multi-scale deformable attention: ``5 * B * Q * H * L * P * D`` multiply-adds."""
    return 5 * batch * queries * heads * levels * points * channels


def key_aware_deform_attn_flops(
    batch: int,
    queries: int,
    heads: int,
    levels: int,
    points: int,
    channels: int,
    shared_key: bool = True,
) -> int:
    """Key-aware deformable attention: ``6 * N * D`` (keys are the values) or ``10 * N * D``
    (separate keys), ``N = B * Q * H * L * P``."""
    per_channel = 6 if shared_key else 10
    return per_channel * batch * queries * heads * levels * points * channels


# --------------------------------------------------------------------------- op handles


def _shape(op: str, name: str, value: Any, rank: int) -> list[int]:
    shape = get_shape(value)
    if shape is None or len(shape) != rank or any(s is None for s in shape):
        raise ValueError(f"flop handle {op}: '{name}' needs a known rank-{rank} shape, got {shape}")
    return shape


def _msda_flop_jit(inputs: list, outputs: list) -> int:
    op = "detr_efficient::ms_deform_attn"
    channels = _shape(op, "value", inputs[0], 4)[3]
    batch, queries, heads, levels, points, _ = _shape(op, "sampling_locations", inputs[3], 6)
    return ms_deform_attn_flops(batch, queries, heads, levels, points, channels)


def _kda_flop_jit(inputs: list, outputs: list) -> int:
    op = "detr_efficient::key_aware_deform_attn"
    channels = _shape(op, "value", inputs[2], 4)[3]
    batch, queries, heads, levels, points, _ = _shape(op, "sampling_locations", inputs[5], 6)
    shared = inputs[1].unique() == inputs[2].unique()  # the very same graph value
    return key_aware_deform_attn_flops(batch, queries, heads, levels, points, channels, shared)


def _sdpa_flop_jit(inputs: list, outputs: list) -> int:
    """``q [..., Lq, E]``, ``k [..., Lk, E]``, ``v [..., Lk, Ev]``: ``Lq * Lk * (E + Ev)``
    per leading index."""
    query, value = get_shape(inputs[0]), get_shape(inputs[2])
    key = get_shape(inputs[1])
    lead = math.prod(query[:-2])
    return lead * query[-2] * key[-2] * (query[-1] + value[-1])


def _native_mha_flop_jit(inputs: list, outputs: list) -> int:
    """``query [B, Lq, C]``, ``key``/``value`` ``[B, Lk, C]``: projections of q, k, v and the
    output (``C * C`` each per token) and ``q k^T`` plus ``attn v`` (``2 * Lq * Lk * C``)."""
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    *lead, q_len, channels = query
    k_len = key[-2]
    batch = math.prod(lead)
    projections = batch * (2 * q_len + 2 * k_len) * channels * channels
    return projections + 2 * batch * q_len * k_len * channels


EXTRA_OP_HANDLES = {
    "detr_efficient::ms_deform_attn": _msda_flop_jit,
    "detr_efficient::key_aware_deform_attn": _kda_flop_jit,
    "aten::scaled_dot_product_attention": _sdpa_flop_jit,
    "aten::_native_multi_head_attention": _native_mha_flop_jit,
}
"""fvcore op handles added on top of Detectron2's ``FlopCountAnalysis`` (by graph node kind)."""


# --------------------------------------------------------------------------- flop counting


@dataclass
class FlopReport:
    """Flops (multiply-adds) of one traced forward pass.

    ``by_module`` is keyed by the model's module names (``""`` = the whole model);
    ``unsupported`` counts the graph ops that no handle counted (elementwise ops mostly).
    """

    total: int
    by_module: dict[str, int]
    by_operator: dict[str, int]
    unsupported: dict[str, int] = field(default_factory=dict)


# Elementwise and reduction ops left uncounted on purpose (Detectron2's analysis list, plus
# two no-op tracing artefacts).
IGNORED_OPS = (
    "aten::add",
    "aten::add_",
    "aten::argmax",
    "aten::argsort",
    "aten::batch_norm",
    "aten::constant_pad_nd",
    "aten::div",
    "aten::div_",
    "aten::exp",
    "aten::log2",
    "aten::max_pool2d",
    "aten::meshgrid",
    "aten::mul",
    "aten::mul_",
    "aten::neg",
    "aten::nonzero_numpy",
    "aten::reciprocal",
    "aten::rsub",
    "aten::sigmoid",
    "aten::sigmoid_",
    "aten::softmax",
    "aten::sort",
    "aten::sqrt",
    "aten::sub",
    "torchvision::nms",
    "aten::resolve_conj",  # tracing artefacts, no arithmetic
    "aten::resolve_neg",
)


def _tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors inside nested lists, tuples, dicts, ``Instances`` and ``Boxes``."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for value in obj.values() for t in _tensors(value)]
    if isinstance(obj, (list, tuple)):
        return [t for value in obj for t in _tensors(value)]
    if hasattr(obj, "get_fields"):  # detectron2 Instances
        return _tensors(obj.get_fields())
    if isinstance(getattr(obj, "tensor", None), torch.Tensor):  # Boxes and friends
        return [obj.tensor]
    return []


class _FlatAdapter(nn.Module):
    """Calls ``model(*args)`` with the original rich arguments and returns the tensors of its
    output, so that ``torch.jit.trace`` sees tensors in and out (it passes the very tensors
    of :attr:`flat` back in, which are the leaves of ``args``).

    Detectron2's ``TracingAdapter`` does the same, but ``detectron2.export`` needs caffe2
    at import time on this stack."""

    def __init__(self, model: nn.Module, args: tuple) -> None:
        super().__init__()
        self.model = model
        self.args = args
        self.flat = tuple(_tensors(args))

    def forward(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        same = len(flat) == len(self.flat) and all(map(operator.is_, flat, self.flat))
        if not same:
            raise ValueError("_FlatAdapter: trace with the adapter's own 'flat' inputs")
        with torch.no_grad():
            return tuple(_tensors(self.model(*self.args)))


def _strip_adapter_prefix(by_module: Mapping[str, int]) -> dict[str, int]:
    """The adapter holds the model as ``model``: drop that prefix."""
    out = {}
    for name, flops in by_module.items():
        if name == "model":
            out[""] = int(flops)
        elif name.startswith("model."):
            out[name[len("model.") :]] = int(flops)
    return out


def analyze_flops(model: nn.Module, inputs: Any) -> FlopReport:
    """Trace ``model(inputs)`` and count its flops with fvcore plus :data:`EXTRA_OP_HANDLES`.

    ``inputs`` is the model's argument, or a tuple of arguments: a Detectron2 list of dicts
    works (non-tensor entries are kept as constants), and ``Instances``/``Boxes`` outputs
    are flattened. Ops of :data:`IGNORED_OPS` count 0; the other ops without a handle are
    summarised in one log line instead of fvcore's per-op warnings. The model's train/eval
    mode is left as it is; the forward runs under ``no_grad``.
    """
    from fvcore.nn import FlopCountAnalysis

    args = inputs if isinstance(inputs, tuple) else (inputs,)
    adapter = _FlatAdapter(model, args)
    if not adapter.flat:
        raise ValueError("analyze_flops: 'inputs' hold no tensor to trace")
    analysis = FlopCountAnalysis(adapter, adapter.flat)
    analysis.set_op_handle(**dict.fromkeys(IGNORED_OPS), **EXTRA_OP_HANDLES)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated")
        total = int(analysis.total())
        by_module = _strip_adapter_prefix(analysis.by_module())
        by_operator = {k: int(v) for k, v in analysis.by_operator().items()}
        unsupported = dict(Counter(analysis.unsupported_ops()).most_common())
    if unsupported:
        summary = ", ".join(f"{op} x{n}" for op, n in unsupported.items())
        logger.info("flop count: ops without a handle (not counted): %s", summary)
    return FlopReport(total, by_module, by_operator, unsupported)


def count_flops(model: nn.Module, inputs: Any) -> tuple[int, dict[str, int]]:
    """``(total, flops by module name)`` of ``model(inputs)``; see :func:`analyze_flops`."""
    report = analyze_flops(model, inputs)
    return report.total, report.by_module


def top_level_flops(by_module: Mapping[str, int]) -> dict[str, int]:
    """Flops of the model's direct children (module names without a dot)."""
    return {name: n for name, n in by_module.items() if name and "." not in name}


def encoder_flops(by_module: Mapping[str, int], keyword: str = "encoder") -> dict[str, int]:
    """Modules whose name contains ``keyword``, at the smallest depth where one occurs
    (e.g. ``transformer.encoder`` and not its layers)."""
    matches = [name for name in by_module if keyword in name]
    if not matches:
        return {}
    depth = min(name.count(".") for name in matches)
    return {name: by_module[name] for name in matches if name.count(".") == depth}


# --------------------------------------------------------------------------- encoder tokens


@torch.no_grad()
def encoder_token_counts(model: nn.Module, inputs: list[dict]) -> dict[str, Any]:
    """Tokens each encoder layer updates, per image: ``{"tokens": S (padded map),
    "valid": [n_b], "kept_per_layer": [[k_b per image] per layer], "kept_fraction": mean
    over layers and images of k_b / n_b}``. Token-selecting detectors (``encode_sparse``)
    report their selection, encoders with ``updated_tokens(token_map)`` (Lite DETR's
    interleaved encoder) theirs; other deformable detectors update every valid token in each
    of their ``encoder.layers``."""
    if hasattr(model, "encode_sparse"):
        _, token_map, _, encoding = model.encode_sparse(inputs)
        kept = [c.tolist() for c in encoding.counts]
    elif hasattr(model, "preprocess_images") and hasattr(model, "token_map"):
        images, mask = model.preprocess_images(inputs)
        token_map = model.token_map(images.tensor, mask)
        valid = (~token_map.padding_mask).sum(1).tolist()
        if hasattr(model.encoder, "updated_tokens"):
            kept = model.encoder.updated_tokens(token_map)
        else:
            kept = [valid for _ in model.encoder.layers]
    else:
        raise ValueError(f"{type(model).__name__} has no deformable token map to count")
    valid = (~token_map.padding_mask).sum(1).tolist()
    fractions = [k / max(n, 1) for layer in kept for k, n in zip(layer, valid, strict=True)]
    return {
        "tokens": int(token_map.tokens.shape[1]),
        "valid": valid,
        "kept_per_layer": kept,
        "kept_fraction": sum(fractions) / len(fractions),
    }


# --------------------------------------------------------------------------- parameters


def count_parameters(model: nn.Module) -> dict[str, Any]:
    """``{"total", "trainable", "by_child": {child name: count}}``. A parameter shared by
    several modules is counted once, under the first child that registers it, so the
    children add up to the total (parameters registered on the model itself: ``""``)."""
    total = trainable = 0
    by_child: dict[str, int] = {}
    for name, param in model.named_parameters():  # de-duplicated by identity
        n = param.numel()
        total += n
        trainable += n if param.requires_grad else 0
        child = name.split(".", 1)[0] if "." in name else ""
        by_child[child] = by_child.get(child, 0) + n
    return {"total": total, "trainable": trainable, "by_child": by_child}


# --------------------------------------------------------------------------- inputs and speed


def dummy_inputs(
    batch_size: int = 1,
    size: Sequence[int] = PROTOCOL_SIZE,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> list[dict]:
    """``batch_size`` Detectron2 input dicts ``{"image": uint8 [3, H, W], "height": H,
    "width": W}`` of random pixels (the model sees the image at its own size: no resize)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"dummy_inputs: 'batch_size' must be a positive int, got {batch_size!r}")
    if len(size) != 2 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"dummy_inputs: 'size' must be two positive ints (H, W), got {size!r}")
    height, width = size
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randint(
                0, 256, (3, height, width), dtype=torch.uint8, generator=generator
            ).to(device),
            "height": height,
            "width": width,
        }
        for _ in range(batch_size)
    ]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _CpuPeakMemory:
    """Peak resident-memory growth of the process over a block (MiB), honest about its
    source: the reset peak mark (``VmHWM``) where Linux allows, else ``ru_maxrss`` growth,
    which is 0 when the process had already peaked higher before the block."""

    def __enter__(self):
        self.baseline = _proc_status_kb("VmRSS")
        self.exact = self.baseline is not None and _reset_peak_rss()
        if not self.exact:
            self.maxrss = self._maxrss_kb()
        return self

    @staticmethod
    def _maxrss_kb() -> int:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS

    def __exit__(self, *exc) -> None:
        peak = _proc_status_kb("VmHWM") if self.exact else None
        if peak is not None:
            self.growth_mb = max(peak - self.baseline, 0) / 1024
            self.source = "cpu: peak resident memory growth over the timed runs (VmHWM)"
        else:
            self.growth_mb = max(self._maxrss_kb() - self.maxrss, 0) / 1024
            self.source = (
                "cpu: growth of the process's lifetime peak RSS (ru_maxrss); 0 if the "
                "process had peaked higher before"
            )


def _timed(call, iters: int, device: torch.device) -> tuple[float, float, str]:
    """Seconds per ``call()`` over ``iters`` calls, peak memory (MiB) and its source: on CUDA
    ``torch.cuda.max_memory_allocated`` over the calls, on CPU :class:`_CpuPeakMemory`."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    tracker = contextlib.nullcontext() if cuda else _CpuPeakMemory()
    with tracker:
        start = time.perf_counter()
        for _ in range(iters):
            call()
        if cuda:
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - start) / iters
    if cuda:
        source = "cuda: torch.cuda.max_memory_allocated over the timed runs"
        return seconds, torch.cuda.max_memory_allocated(device) / 2**20, source
    return seconds, tracker.growth_mb, tracker.source


@torch.no_grad()
def measure_speed(model: nn.Module, inputs: Any, warmup: int = 3, iters: int = 10) -> dict:
    """Time ``model(inputs)`` under ``no_grad`` after ``warmup`` untimed calls.

    Returns ``{"fps", "seconds_per_iter", "images_per_iter", "iters", "warmup", "device",
    "peak_memory_mb", "memory_source"}``; ``fps`` counts images (the length of a list
    input, else 1). Peak memory: ``torch.cuda.max_memory_allocated`` over the timed runs on
    CUDA (weights included); on CPU the peak growth of resident memory (see
    ``memory_source``: allocator caches included, weights excluded).
    """
    for name, value in (("warmup", warmup), ("iters", iters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "iters"):
            raise ValueError(f"measure_speed: '{name}' must be an int >= {int(name == 'iters')}")
    device = _model_device(model)
    images = len(inputs) if isinstance(inputs, list) else 1
    for _ in range(warmup):
        model(inputs)
    seconds, peak_mb, source = _timed(lambda: model(inputs), iters, device)
    return {
        "fps": images / seconds,
        "seconds_per_iter": seconds,
        "images_per_iter": images,
        "iters": iters,
        "warmup": warmup,
        "device": str(device),
        "peak_memory_mb": peak_mb,
        "memory_source": source,
    }


def dummy_training_inputs(
    batch_size: int,
    size: Sequence[int],
    num_classes: int,
    device: str | torch.device = "cpu",
    boxes_per_image: int = 8,
    seed: int = 0,
) -> list[dict]:
    """:func:`dummy_inputs` with ``"instances"``: ``boxes_per_image`` random ground-truth boxes
    (5% to 35% of each side) of random classes in ``[0, num_classes)``."""
    from detectron2.structures import Boxes, Instances

    inputs = dummy_inputs(batch_size, size, device, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    height, width = size
    scale = torch.tensor([width, height], dtype=torch.float32)
    for item in inputs:
        corner = torch.rand(boxes_per_image, 2, generator=generator) * 0.6 * scale
        extent = (torch.rand(boxes_per_image, 2, generator=generator) * 0.3 + 0.05) * scale
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(torch.cat([corner, corner + extent], 1).to(device))
        classes = torch.randint(num_classes, (boxes_per_image,), generator=generator)
        instances.gt_classes = classes.to(device)
        item["instances"] = instances
    return inputs


def measure_training_step(
    model: nn.Module,
    inputs: list[dict],
    warmup: int = 2,
    iters: int = 5,
    autocast: torch.dtype | None = None,
) -> dict:
    """Time training steps (forward, the summed losses' backward, an AdamW step) of
    ``model`` in train mode on ``inputs`` (see :func:`dummy_training_inputs`), the forward
    under ``torch.autocast`` to ``autocast`` (e.g. ``torch.bfloat16``) when given; the model's
    weights change. Returns ``{"seconds_per_iter", "images_per_iter", "iters", "warmup",
    "device", "peak_memory_mb", "memory_source"}``, memory as in :func:`measure_speed`."""
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"measure_training_step: 'iters' must be an int >= 1, got {iters!r}")
    device = _model_device(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            losses = model(inputs)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    seconds, peak_mb, source = _timed(step, iters, device)
    optimizer.zero_grad(set_to_none=True)  # free the gradients
    model.eval()
    return {
        "seconds_per_iter": seconds,
        "images_per_iter": len(inputs),
        "iters": iters,
        "warmup": warmup,
        "device": str(device),
        "peak_memory_mb": peak_mb,
        "memory_source": source,
    }


# --------------------------------------------------------------------------- building models


def load_config(config_file: str | os.PathLike, overrides: Sequence[str] = ()):
    """``LazyConfig.load(config_file)`` with ``key=value`` ``overrides`` applied; the config
    must define ``model``."""
    from detectron2.config import LazyConfig

    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {config_file}")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(path)), list(overrides))
    if "model" not in cfg:
        raise KeyError(f"config file {config_file} defines no 'model'")
    return cfg


def load_checkpoint(
    model: nn.Module, checkpoint: str | os.PathLike, require_every_weight: bool = True
) -> None:
    """Load weights with the project's ``TrainCheckpointer`` (Detectron2's): a ``torch.save``
    file with a ``"model"`` state dict (or a bare state dict), a Detectron2 ``.pkl``, or a URL
    it knows.

    With ``require_every_weight`` (inference: a model with some random weights would give
    meaningless results) a checkpoint that leaves any weight unfilled raises
    ``IncompleteCheckpointError`` (a ``ValueError``) naming them; without it (e.g. an ImageNet
    backbone as ``train.init_checkpoint``) at least one weight must fit. Raises
    ``FileNotFoundError`` for a missing local file and ``ValueError`` for one that cannot be
    loaded."""
    from detr_efficient.engine.checkpoint import IncompleteCheckpointError, TrainCheckpointer

    checkpoint = str(checkpoint)
    if "://" not in checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    try:
        TrainCheckpointer(model, require_every_weight=require_every_weight).load(checkpoint)
    except IncompleteCheckpointError:
        raise
    except Exception as e:  # unreadable file, bad pickle, unreachable URL, nothing fits, ...
        raise ValueError(f"cannot load checkpoint {checkpoint}: {e}") from e


def build_inference_model(
    cfg,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike | None = None,
    require_every_weight: bool = True,
) -> nn.Module:
    """``instantiate(cfg.model)`` on ``device`` in eval mode, with ``checkpoint`` loaded when
    given (see :func:`load_checkpoint`)."""
    from detectron2.config import instantiate

    model = instantiate(cfg.model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"cfg.model must build an nn.Module, got {type(model).__name__}")
    model.to(device).eval()
    if checkpoint:
        load_checkpoint(model, checkpoint, require_every_weight)
    return model
