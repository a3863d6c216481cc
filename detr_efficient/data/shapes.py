"""Deterministic synthetic COCO-format detection dataset of geometric shapes.

Every image is a cluttered, textured background (gradient, low-frequency colour noise, soft
blobs, random lines and arcs) with ``min_objects``..``max_objects`` (default 2..10) shapes
painted over it in order, later shapes occluding earlier ones. The class is the geometry
(``CLASS_NAMES``); each shape is filled or outlined, has a random colour (contrasting with the
background under it), rotation and a size (diameter) drawn log-uniformly from ``min_size``
pixels up to ``max_size_frac`` of the shorter image side.

Annotation rule: the box is the tight box of the shape's *visible* pixels (not covered by later
shapes, inside the image) and ``area`` is the visible pixel count. A shape whose visible pixels
are less than ``min_visible`` of its full (unoccluded, untruncated) pixel count, or whose visible
box is thinner than 2 px, is not drawn at all, so every painted shape is annotated.

Image ``k`` (0-based) uses the random stream ``numpy.random.default_rng([seed, k])``: the same
seed gives identical annotations and identical JPEG bytes, independent of ``num_images``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["CLASS_NAMES", "ShapesParams", "generate_shapes", "render_shapes_image"]

logger = logging.getLogger(__name__)

CLASS_NAMES = ("circle", "rectangle", "triangle", "star", "cross")
GENERATOR_VERSION = 1
_MIN_OUTLINE_SIZE = 16.0  # shapes smaller than this (diameter, px) are always filled
_MIN_CONTRAST = 90.0  # wanted RGB distance between a shape and the background under it


@dataclass(frozen=True)
class ShapesParams:
    """Generator parameters; ``image_size`` is (H, W) in pixels, sizes are diameters in px."""

    image_size: tuple[int, int] = (256, 256)
    min_objects: int = 2
    max_objects: int = 10
    min_size: float = 8.0
    max_size_frac: float = 0.65
    min_visible: float = 0.3
    jpeg_quality: int = 90

    def __post_init__(self):
        h, w = self.image_size
        if h < 32 or w < 32:
            raise ValueError(f"image_size must be at least 32x32, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self}")
        if not 4 <= self.min_size < self.max_size_frac * min(h, w):
            raise ValueError(f"need 4 <= min_size < max_size_frac * min(H, W), got {self}")
        if not 0.0 <= self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be in [0, 1], got {self.min_visible}")


@dataclass(eq=False)
class _Shape:
    """One sampled shape: ``mask`` is its full (H_l, W_l) bool mask at offset (y0, x0)."""

    category: int
    mask: np.ndarray
    y0: int
    x0: int
    colour: np.ndarray


def _polygon(category: int, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Vertices (x, y) of a shape centred at the origin, inside the circle of radius ``r``."""
    theta = rng.uniform(0.0, 2.0 * math.pi)
    name = CLASS_NAMES[category]
    if name == "rectangle":
        aspect = rng.uniform(0.35, 1.0)
        hw, hh = r / math.hypot(1.0, aspect), r * aspect / math.hypot(1.0, aspect)
        pts = [(hw, hh), (-hw, hh), (-hw, -hh), (hw, -hh)]
    elif name == "triangle":
        angles = [2.0 * math.pi * k / 3.0 + rng.uniform(-0.3, 0.3) for k in range(3)]
        pts = [(r * math.cos(a), r * math.sin(a)) for a in angles]
    elif name == "star":
        inner = r * rng.uniform(0.38, 0.5)
        pts = [
            (
                (r if k % 2 == 0 else inner) * math.cos(math.pi * k / 5.0),
                (r if k % 2 == 0 else inner) * math.sin(math.pi * k / 5.0),
            )
            for k in range(10)
        ]
    elif name == "cross":
        t = r * rng.uniform(0.2, 0.32)
        a = math.sqrt(r * r - t * t)
        pts = [
            (t, a),
            (-t, a),
            (-t, t),
            (-a, t),
            (-a, -t),
            (-t, -t),
            (-t, -a),
            (t, -a),
            (t, -t),
            (a, -t),
            (a, t),
            (t, t),
        ]
    else:
        raise ValueError(f"not a polygon class: {name}")
    c, s = math.cos(theta), math.sin(theta)
    return [(x * c - y * s, x * s + y * c) for x, y in pts]


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion of a 2-D bool mask by a (2 * radius + 1) square (outside counts as 0)."""
    out = mask
    for axis in (0, 1):
        cur = np.moveaxis(out, axis, 0)
        acc = cur.copy()
        for s in range(1, radius + 1):
            acc[s:] &= cur[:-s]
            acc[:-s] &= cur[s:]
            acc[:s] = False
            acc[-s:] = False
        out = np.moveaxis(acc, 0, axis)
    return out


def _shape_mask(category: int, cx: float, cy: float, diameter: float, filled: bool, rng):
    """Rasterise one shape; returns (bool mask (H_l, W_l), y0, x0) in image coordinates."""
    r = diameter / 2.0
    x0, y0 = math.floor(cx - r) - 2, math.floor(cy - r) - 2
    side = math.ceil(2.0 * r) + 5
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    lx, ly = cx - x0, cy - y0
    if CLASS_NAMES[category] == "circle":
        draw.ellipse((lx - r, ly - r, lx + r, ly + r), fill=255)
    else:
        draw.polygon([(lx + x, ly + y) for x, y in _polygon(category, r, rng)], fill=255)
    mask = np.asarray(canvas) > 0
    if not filled:
        mask &= ~_erode(mask, max(1, round(r * rng.uniform(0.06, 0.14))))
    return mask, y0, x0


def _clip(shape: _Shape, h: int, w: int):
    """(image slice, mask slice) of the part of ``shape`` that lies inside an (h, w) image."""
    mh, mw = shape.mask.shape
    ya, xa = max(shape.y0, 0), max(shape.x0, 0)
    yb, xb = min(shape.y0 + mh, h), min(shape.x0 + mw, w)
    if ya >= yb or xa >= xb:
        return None, None
    img_sl = (slice(ya, yb), slice(xa, xb))
    mask_sl = (slice(ya - shape.y0, yb - shape.y0), slice(xa - shape.x0, xb - shape.x0))
    return img_sl, mask_sl


def _visible(shapes: list[_Shape], h: int, w: int) -> list[tuple[int, tuple[int, ...]] | None]:
    """Per shape: (visible pixel count, visible box (x0, y0, x1, y1) inclusive), or None."""
    owner = np.full((h, w), -1, dtype=np.int32)
    for i, shape in enumerate(shapes):
        img_sl, mask_sl = _clip(shape, h, w)
        if img_sl is not None:
            owner[img_sl][shape.mask[mask_sl]] = i
    out = []
    for i, shape in enumerate(shapes):
        img_sl, _ = _clip(shape, h, w)
        ys, xs = np.nonzero(owner[img_sl] == i) if img_sl is not None else ((), ())
        if len(ys) == 0:
            out.append(None)
            continue
        ya, xa = img_sl[0].start, img_sl[1].start
        box = (xa + int(xs.min()), ya + int(ys.min()), xa + int(xs.max()), ya + int(ys.max()))
        out.append((len(ys), box))
    return out


def _keep_visible(shapes: list[_Shape], h: int, w: int, min_visible: float):
    """Drop shapes (painted in list order) with less than ``min_visible`` of their full mask
    visible or a visible box under 2 px on a side.

    Returns (kept shapes, per kept shape (visible pixel count, visible box [x, y, w, h])).
    Dropping a shape only uncovers the others, so one filtering pass is final.
    """
    keep = []
    for shape, vis in zip(shapes, _visible(shapes, h, w), strict=True):
        if vis is None:
            continue
        count, (xa, ya, xb, yb) = vis
        if count >= min_visible * shape.mask.sum() and min(xb - xa, yb - ya) >= 1:
            keep.append(shape)
    visible = [
        (count, [xa, ya, xb - xa + 1, yb - ya + 1])
        for count, (xa, ya, xb, yb) in _visible(keep, h, w)
    ]
    return keep, visible


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Cluttered float32 (h, w, 3) background with values roughly in [0, 255]."""
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    phi = rng.uniform(0.0, 2.0 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * math.cos(phi) + yy * math.sin(phi)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    bg = c1[None, None] + (c2 - c1)[None, None] * t[..., None]
    gh, gw = rng.integers(3, 9, size=2)
    coarse = rng.normal(0.0, 35.0, size=(3, gh, gw)).astype(np.float32)
    for ch in range(3):
        up = Image.fromarray(coarse[ch]).resize((w, h), Image.Resampling.BICUBIC)
        bg[..., ch] += np.asarray(up)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    for _ in range(rng.integers(2, 6)):  # soft blobs
        layer = Image.new("L", (w, h), 0)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
        ImageDraw.Draw(layer).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=160)
        layer = layer.filter(ImageFilter.GaussianBlur(0.5 * min(rx, ry) + 2.0))
        colour = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
        img = Image.composite(colour, img, layer)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(3, 13)):  # thin lines and half-open arcs
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        width = int(rng.integers(1, 3))
        if rng.random() < 0.7:
            xy = [float(v) for v in rng.uniform(0, 1, 4) * (w, h, w, h)]
            draw.line(xy, fill=colour, width=width)
        else:
            cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 0.5 * min(h, w))
            start = rng.uniform(0, 360)
            draw.arc(
                (cx - rad, cy - rad, cx + rad, cy + rad),
                start,
                start + rng.uniform(40, 180),
                fill=colour,
                width=width,
            )
    return np.asarray(img).astype(np.float32)


def _contrasting_colour(under: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour far (>= _MIN_CONTRAST, best of 12 tries) from the mean ``under``."""
    best, best_dist = None, -1.0
    for _ in range(12):
        colour = rng.integers(0, 256, 3).astype(np.float32)
        dist = float(np.linalg.norm(colour - under))
        if dist > best_dist:
            best, best_dist = colour, dist
        if dist >= _MIN_CONTRAST:
            break
    return best


def render_shapes_image(rng: np.random.Generator, params: ShapesParams):
    """Render one image.

    Returns (uint8 image (H, W, 3), list of (category index, [x, y, w, h] box, visible area)).
    """
    h, w = params.image_size
    bg = _background(h, w, rng)
    n = int(rng.integers(params.min_objects, params.max_objects + 1))
    log_lo, log_hi = math.log(params.min_size), math.log(params.max_size_frac * min(h, w))
    diameters = np.exp(rng.uniform(log_lo, log_hi, n))
    # Mostly large-under-small painting order, with enough jitter for real occlusions.
    order = np.argsort(-(np.log(diameters) + rng.normal(0.0, 0.5, n)), kind="stable")
    shapes = []
    for d in diameters[order]:
        category = int(rng.integers(len(CLASS_NAMES)))
        # Centres keep at least 30% of the shape's extent inside the image on each axis.
        cx = rng.uniform(0.2 * d, w - 0.2 * d)
        cy = rng.uniform(0.2 * d, h - 0.2 * d)
        filled = d < _MIN_OUTLINE_SIZE or rng.random() < 0.6
        mask, y0, x0 = _shape_mask(category, cx, cy, float(d), filled, rng)
        shape = _Shape(category, mask, y0, x0, np.zeros(3, np.float32))
        img_sl, mask_sl = _clip(shape, h, w)
        under = bg[img_sl][mask[mask_sl]] if img_sl is not None else bg.reshape(-1, 3)
        shape.colour = _contrasting_colour(under.mean(axis=0) if len(under) else 127.5, rng)
        shapes.append(shape)
    keep, visible = _keep_visible(shapes, h, w, params.min_visible)
    for shape in keep:
        img_sl, mask_sl = _clip(shape, h, w)
        bg[img_sl][shape.mask[mask_sl]] = shape.colour
    bg += rng.normal(0.0, rng.uniform(2.0, 10.0), size=bg.shape).astype(np.float32)
    image = np.clip(np.rint(bg), 0, 255).astype(np.uint8)
    return image, [
        (shape.category, box, area) for shape, (area, box) in zip(keep, visible, strict=True)
    ]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a per-process temp file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _is_complete(json_path: Path, info: dict, image_dir: Path) -> bool:
    """True if ``json_path`` was written with the same ``info`` and all its images exist."""
    try:
        data = json.loads(json_path.read_text())
        if data["info"] != info:
            return False
        return all((image_dir / im["file_name"]).is_file() for im in data["images"])
    except (OSError, ValueError, LookupError, TypeError):  # absent, unparsable or malformed
        return False


def generate_shapes(
    out_dir: str | os.PathLike,
    split: str,
    num_images: int,
    image_size: tuple[int, int] = (256, 256),
    seed: int = 0,
    **params,
) -> Path:
    """Generate (or reuse) a shapes split; returns the path of its COCO instances json.

    Writes ``<out_dir>/<split>/<image id:06d>.jpg`` (image ids start at 1) and
    ``<out_dir>/annotations/instances_<split>.json``. Extra keyword arguments are the other
    ``ShapesParams`` fields. If the json exists with the same recorded parameters and all its
    images exist, nothing is written. Otherwise the old json is removed first and the new one
    is written last (temp file + ``os.replace``), so a json on disk always means a complete
    dataset.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    cfg = ShapesParams(image_size=(int(image_size[0]), int(image_size[1])), **params)
    record = {"split": split, "num_images": int(num_images), "seed": int(seed), **asdict(cfg)}
    record["image_size"] = list(cfg.image_size)
    info = {
        "description": "synthetic shapes detection dataset",
        "generator": "detr_efficient.data.shapes",
        "version": GENERATOR_VERSION,
        "params": record,
    }
    out_dir = Path(out_dir)
    image_dir = out_dir / split
    json_path = out_dir / "annotations" / f"instances_{split}.json"
    if _is_complete(json_path, info, image_dir):
        logger.info("Shapes split %r is up to date: %s", split, json_path)
        return json_path
    logger.info("Generating %d shapes images (%r, seed %d) in %s", num_images, split, seed, out_dir)
    json_path.unlink(missing_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(num_images):
        image, objects = render_shapes_image(np.random.default_rng([seed, k]), cfg)
        image_id = k + 1
        file_name = f"{image_id:06d}.jpg"
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=cfg.jpeg_quality, subsampling=0)
        _write_atomic(image_dir / file_name, buf.getvalue())
        h, w = cfg.image_size
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for category, bbox, area in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASS_NAMES)
    ]
    data = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    _write_atomic(json_path, json.dumps(data).encode())
    return json_path
