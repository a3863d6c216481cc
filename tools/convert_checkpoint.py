#!/usr/bin/env python
"""Convert public DETR-family checkpoints and ImageNet ResNets to this library's format.

    tools/convert_checkpoint.py --source dino-official --input checkpoint0011_4scale.pth \\
        --output dino_r50_official.pth [--config-file configs/dino/models/dino_r50.py] \\
        [--trust] [--model-key model] [key=value ...]

Sources: dino-official (IDEA-Research/DINO), detrex-dino, deformable-detr-official
(fundamentalvision/Deformable-DETR, two-stage + box refinement), detrex-deformable-detr,
focus-detr (detrex projects/focus_detr → FocusDETR, e.g.
configs/focus_detr/models/focus_detr_r50.py; per-layer heads, as detrex-dino's, need
model.share_heads=False), lite-detr (IDEA-Research/Lite-DETR), ddq-detr-mmdet (mmdetection 3.x
DDQ-DETR → DDQDETR, configs/ddq/models/ddq_detr_r50.py), detr-distill-student (the student of a
DETRDistill checkpoint, for the student's own config), torchvision-resnet (ImageNet weights →
``backbone.*`` for ``train.init_checkpoint``).
Detectron2 ``.pkl`` ImageNet weights need no conversion: point ``train.init_checkpoint`` at
them directly, except for a DETRDistill model, whose student and teacher both have a
backbone: there ``--prefix student.`` puts converted weights under the student
(``student.backbone.*``; the teacher comes from ``model.teacher_weights``).

The input is read with ``torch.load(weights_only=True)`` (``detr_efficient.compat``
allow-lists the ``argparse.Namespace`` and numpy data the official checkpoints carry); files
pickling other Python objects need ``--trust``, which unpickles arbitrary objects: use it
only on files from a source you trust. With
``--config-file`` (and overrides) the model is built and the converted weights must fit it
exactly (a subset of its keys for torchvision-resnet). The output ``{"model": ...}`` is
written atomically. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import torch

from detr_efficient.modeling.conversion import (
    PARTIAL_SOURCES,
    SOURCES,
    ConversionError,
    check_against,
    convert_with_report,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, choices=sorted(SOURCES))
    parser.add_argument("--input", required=True, help="checkpoint to convert (.pth)")
    parser.add_argument("--output", required=True, help="where to write {'model': ...}")
    parser.add_argument("--config-file", help="LazyConfig whose 'model' the weights must fit")
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow arbitrary pickled objects in --input (weights_only=False); only for "
        "files from a trusted source",
    )
    parser.add_argument(
        "--model-key",
        help="entry of the input holding the state dict (e.g. 'ema_model'; default: 'model', "
        "else mmdetection's 'state_dict'); a bare state dict is used as is",
    )
    parser.add_argument(
        "--prefix",
        default="",
        help="prepended to every converted key, e.g. 'student.' for a DETRDistill student",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    args = parser.parse_args(argv)
    if args.opts and not args.config_file:
        parser.error(f"overrides {args.opts} need --config-file")
    return args


class ToolError(RuntimeError):
    """A problem with the inputs, reported without a traceback."""


def load_checkpoint(path: Path, trust: bool) -> object:
    if not path.is_file():
        raise ToolError(f"--input {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as error:
        if trust:
            raise
        lines = str(error).strip().splitlines()
        detail = next((line for line in lines if "Unsupported global" in line), lines[-1])
        raise ToolError(
            f"--input {path} holds pickled Python objects that weights_only=True refuses. If "
            f"you trust where the file comes from, rerun with --trust. ({detail.strip()[:300]})"
        ) from None


# Where checkpoints keep their state dict: ours, Detectron2's and the official DETRs' under
# "model"; mmdetection / mmengine's under "state_dict" (next to "meta").
STATE_DICT_KEYS = ("model", "state_dict")


def extract_state_dict(checkpoint: object, key: str | None) -> Mapping[str, torch.Tensor]:
    """``checkpoint[key]`` (by default the first of ``STATE_DICT_KEYS`` present), else the
    checkpoint itself when it is a state dict."""
    if not isinstance(checkpoint, Mapping):
        raise ToolError(f"--input holds a {type(checkpoint).__name__}, not a dict of tensors")
    keys = (key,) if key else STATE_DICT_KEYS
    for name in keys:
        if isinstance(checkpoint.get(name), Mapping):
            return checkpoint[name]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ToolError(
        f"--input has no state dict under {' or '.join(map(repr, keys))} and is not one "
        f"itself; its top-level keys: {sorted(map(str, checkpoint))[:20]} (choose one with "
        "--model-key)"
    )


def build_model(config_file: str, opts: list[str]) -> torch.nn.Module:
    from detectron2.config import LazyConfig, instantiate

    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), opts)
    if "model" not in cfg:
        raise ToolError(f"--config-file {config_file} defines no 'model'")
    return instantiate(cfg.model)


def save_atomic(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(obj, f)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> str:
    checkpoint = load_checkpoint(Path(args.input), args.trust)
    state_dict = extract_state_dict(checkpoint, args.model_key)
    model = build_model(args.config_file, args.opts) if args.config_file else None
    conversion = convert_with_report(state_dict, args.source)
    weights = {args.prefix + key: value for key, value in conversion.state_dict.items()}
    if model is not None:  # the proof: the model accepts the weights
        partial = args.source in PARTIAL_SOURCES
        check_against(weights, model, partial, args.source)
        model.load_state_dict(weights, strict=not partial)
    output = Path(args.output)
    save_atomic({"model": weights}, output)
    checked = f"; fits {args.config_file}" if model is not None else ""
    return f"{conversion.summary()}\nwrote {output}{checked}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (ToolError, ConversionError) as error:
        print(f"convert_checkpoint: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
