"""A tiny stand-in detector in a throwaway LazyConfig, and in-process runs of the tools."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A self-contained LazyConfig: Detectron2's model contract (list of dicts in, list of
# {"instances"} out, boxes in original-image coordinates) on one deformable-attention
# "encoder" layer over a stride-8 conv feature map and a deformable "decoder" layer.
STAND_IN_CONFIG = """
import torch
from detectron2.config import LazyCall as L
from detectron2.structures import Boxes, ImageList, Instances
from omegaconf import OmegaConf
from torch import nn

from detr_efficient.data import DetrDatasetMapper
from detr_efficient.layers import MultiScaleDeformableAttention


class TinyDetector(nn.Module):
    def __init__(self, num_classes=5, dim=32, num_queries=6):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor([124.0, 116.0, 104.0]).view(3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([58.0, 57.0, 57.0]).view(3, 1, 1))
        self.backbone = nn.Conv2d(3, dim, 8, stride=8)
        self.encoder = MultiScaleDeformableAttention(dim, num_heads=2, num_levels=1, num_points=2)
        self.query_embed = nn.Embedding(num_queries, dim)
        self.reference = nn.Linear(dim, 2)
        self.decoder = MultiScaleDeformableAttention(dim, num_heads=2, num_levels=1, num_points=2)
        self.class_head = nn.Linear(dim, num_classes)
        self.box_head = nn.Linear(dim, 4)

    def forward(self, batched_inputs):
        if self.training:
            raise NotImplementedError("TinyDetector is inference-only")
        images = [(x["image"].float() - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        images = ImageList.from_tensors(images, size_divisibility=8)
        features = self.backbone(images.tensor)
        batch, _, h, w = features.shape
        tokens = features.flatten(2).transpose(1, 2)
        shapes = torch.tensor([[h, w]], device=tokens.device)
        starts = torch.zeros(1, dtype=torch.long, device=tokens.device)
        ys = (torch.arange(h, device=tokens.device) + 0.5) / h
        xs = (torch.arange(w, device=tokens.device) + 0.5) / w
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        reference = grid.reshape(1, h * w, 1, 2).expand(batch, -1, -1, -1)
        memory = self.encoder(
            tokens, reference_points=reference, spatial_shapes=shapes, level_start_index=starts
        )
        query = self.query_embed.weight[None].expand(batch, -1, -1)
        query_reference = self.reference(query).sigmoid()[:, :, None, :]
        hidden = self.decoder(
            query,
            memory,
            reference_points=query_reference,
            spatial_shapes=shapes,
            level_start_index=starts,
        )
        scores, classes = self.class_head(hidden).sigmoid().max(dim=-1)
        boxes = self.box_head(hidden).sigmoid()
        results = []
        for i, x in enumerate(batched_inputs):
            height = x.get("height", x["image"].shape[1])
            width = x.get("width", x["image"].shape[2])
            cx, cy, bw, bh = boxes[i].unbind(-1)
            xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
            xyxy = xyxy.clamp(0, 1) * torch.tensor([width, height, width, height]).to(xyxy)
            instances = Instances((height, width))
            instances.pred_boxes = Boxes(xyxy)
            instances.scores = scores[i]
            instances.pred_classes = classes[i]
            results.append({"instances": instances})
        return results


model = L(TinyDetector)(num_classes=5)
dataloader = OmegaConf.create()
dataloader.test = dict(
    dataset=dict(names="shapes_val"),
    mapper=L(DetrDatasetMapper)(is_train=False, eval_min_size=64, eval_max_size=96),
)
train = dict(init_checkpoint="")
"""


@pytest.fixture
def stand_in_config(tmp_path) -> Path:
    """Path of a LazyConfig building the stand-in detector (5 classes, test dataset
    ``shapes_val``, test mapper resizing to 64 short side)."""
    path = tmp_path / "stand_in_detector.py"
    path.write_text(STAND_IN_CONFIG)
    return path


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (its ``main(argv)`` runs the tool in-process)."""
    module_name = f"_tool_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def benchmark_rows(
    name: str, argv: list[str], output: Path, json_name: str, timeout: float
) -> list[dict]:
    """Run ``tools/<name>.py argv --output output`` as a script (it must exit 0 within
    ``timeout`` s) and return the ``rows`` of the JSON it wrote there as ``json_name``."""
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / f"{name}.py"), *argv, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((output / json_name).read_text())["rows"]
