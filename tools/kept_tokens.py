#!/usr/bin/env python
"""Draw where a token-selecting detector (Focus-DETR, Sparse DETR) spends its encoder: for
one image, one panel per feature level with the tokens its first encoder layer updates
(light) and those its last layer updates (strong), the picture Focus-DETR's paper uses to
show that selection lands on objects.

    tools/kept_tokens.py --config-file configs/focus_detr/focus_detr_shapes_cpu.py \\
        --checkpoint model_final.pth --input image.png --output kept.png [--device cuda] \\
        [key=value ...]

The image goes through the config's test mapper, as in ``tools/predict.py``; the panels show
the resized image the model sees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import detr_efficient  # noqa: F401  (first: makes Detectron2 v0.6 work on this stack)

# isort: split
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import add_device_argument, build_mapper, check_device  # noqa: E402

from detr_efficient.evaluation import model_analysis as ma  # noqa: E402

FIRST = np.array([255, 200, 0], dtype=np.float32)  # kept by the first encoder layer
LAST = np.array([255, 40, 40], dtype=np.float32)  # kept by the last encoder layer


def kept_masks(model: torch.nn.Module, inputs: dict) -> tuple[list, list, list]:
    """Run the selector and encoder on one mapped input: per level, bool ``[H_l, W_l]``
    masks of the tokens kept by the first and by the last encoder layer, and the level
    shapes."""
    if not hasattr(model, "encode_sparse"):
        raise ValueError(f"{type(model).__name__} does not select encoder tokens")
    with torch.no_grad():
        _, token_map, _, encoding = model.encode_sparse([inputs])
    masks = []
    for index in (encoding.kept[0][0], encoding.kept[-1][0]):
        flat = torch.zeros(token_map.tokens.shape[1], dtype=torch.bool)
        flat[index[index >= 0].cpu()] = True
        sizes = [h * w for h, w in token_map.shapes]
        masks.append(
            [m.reshape(s) for m, s in zip(flat.split(sizes), token_map.shapes, strict=True)]
        )
    return masks[0], masks[1], token_map.shapes


def draw_level(
    image: np.ndarray, first: torch.Tensor, last: torch.Tensor, padded: tuple
) -> Image.Image:
    """``image`` (H, W, 3) uint8 RGB, darkened, with each kept token's cell tinted.
    ``padded``: the (H, W) of the padded batch the level's grid covers."""
    height, width = image.shape[:2]
    rows, cols = first.shape
    cell_h, cell_w = padded[0] / rows, padded[1] / cols
    canvas = image.astype(np.float32) * 0.45
    for mask, colour, strength in ((first, FIRST, 0.45), (last, LAST, 0.65)):
        for i, j in mask.nonzero().tolist():
            y0, y1 = int(i * cell_h), min(height, int((i + 1) * cell_h))
            x0, x1 = int(j * cell_w), min(width, int((j + 1) * cell_w))
            canvas[y0:y1, x0:x1] = (1 - strength) * canvas[y0:y1, x0:x1] + strength * colour
    return Image.fromarray(canvas.clip(0, 255).astype(np.uint8))


def kept_tokens_picture(
    model: torch.nn.Module, inputs: dict, image_format: str = "RGB"
) -> Image.Image:
    """One row of panels (one per level) for the mapped ``inputs`` of one image."""
    first, last, shapes = kept_masks(model, inputs)
    image = inputs["image"].permute(1, 2, 0).cpu().numpy()
    if image_format == "BGR":
        image = image[:, :, ::-1]
    divisibility = max(getattr(model, "size_divisibility", 0), 1)
    padded = tuple(-(-s // divisibility) * divisibility for s in image.shape[:2])
    font = ImageFont.load_default()
    panels = []
    for level, (a, b) in enumerate(zip(first, last, strict=True)):
        panel = draw_level(image, a, b, padded)
        text = (
            f"level {level} {shapes[level][0]}x{shapes[level][1]}: {int(a.sum())} / {int(b.sum())}"
        )
        ImageDraw.Draw(panel).text((3, 3), text, fill=(255, 255, 255), font=font)
        panels.append(panel)
    width, height = panels[0].size
    row = Image.new("RGB", (width * len(panels), height), "white")
    for i, panel in enumerate(panels):
        row.paste(panel, (i * width, 0))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True, help="one image file")
    parser.add_argument("--output", required=True, help="PNG to write")
    add_device_argument(parser)
    parser.add_argument("opts", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)
    check_device(parser, args.device)
    for path, flag in ((args.checkpoint, "--checkpoint"), (args.input, "--input")):
        if not Path(path).is_file():
            raise SystemExit(f"error: {flag} {path}: no such file")
    cfg = ma.load_config(args.config_file, args.opts)
    model = ma.build_inference_model(cfg, args.device, args.checkpoint)
    mapper = build_mapper(cfg)
    inputs = mapper({"file_name": args.input, "image_id": 0})
    inputs["image"] = inputs["image"].to(args.device)
    try:
        picture = kept_tokens_picture(model, inputs, getattr(mapper, "image_format", "RGB"))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
