"""A tiny version of every detector must memorise a few synthetic images: the loss falls and
COCO AP on those images (pycocotools) becomes high."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detr_efficient.data import DetrDatasetMapper

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "dino": "configs/dino/models/dino_shapes.py",
    "deformable_detr": "configs/deformable_detr/models/deformable_detr_shapes.py",
    "focus_detr": "configs/focus_detr/models/focus_detr_shapes.py",
    "sparse_detr": "configs/sparse_detr/models/sparse_detr_shapes.py",
    "lite_dino": "configs/lite_detr/models/lite_dino_shapes.py",
    "ddq_detr": "configs/ddq/models/ddq_detr_shapes.py",
    "ddq_fcn": "configs/ddq/models/ddq_fcn_shapes.py",
    "ddq_rcnn": "configs/ddq/models/ddq_rcnn_shapes.py",
    "focus_ddq_detr": "configs/combined/models/focus_ddq_detr_shapes.py",
}
TINY = [
    "model.embed_dim=64",
    "model.num_queries=30",
    "model.backbone.widths=[16,32,64,128]",
    "model.neck.in_channels=[32,64,128]",
    "model.neck.out_channels=64",
    "model.neck.num_groups=8",
    "model.position_embedding.num_feats=32",
    "model.decoder.embed_dim=64",
    "model.decoder.layer.embed_dim=64",
    "model.decoder.layer.ffn_dim=128",
    "model.decoder.layer.cross_attn.embed_dim=64",
]
TINY_ENCODER = [
    "model.encoder.num_layers=1",
    "model.encoder.layer.embed_dim=64",
    "model.encoder.layer.ffn_dim=128",
    "model.encoder.layer.self_attn.embed_dim=64",
]
TINY_SELECTIVE_ENCODER = [
    "model.encoder.keep_ratios=[0.5]",
    "model.encoder.layer.layer.embed_dim=64",
    "model.encoder.layer.layer.ffn_dim=128",
    "model.encoder.layer.layer.self_attn.embed_dim=64",
]
TINY_DUAL_ATTENTION = ["model.encoder.layer.dual_attention.embed_dim=64"]
TINY_INTERLEAVED_ENCODER = [
    f"model.encoder.{layer}.{key}=64"
    for layer in ("high_layer", "full_layer")
    for key in ("embed_dim", "self_attn.embed_dim")
] + [
    "model.encoder.high_layer.ffn_dim=128",
    "model.encoder.full_layer.ffn_dim=128",
    "model.encoder.full_layer.low_ffn_dim=64",
]
TINY_FCN = [
    "model.num_queries=30",
    "model.candidates_per_level=50",
    "model.backbone.bottom_up.widths=[16,32,64,128]",
    "model.backbone.out_channels=64",
    "model.backbone.top_block.in_channels=64",
    "model.backbone.top_block.out_channels=64",
    "model.head.in_channels=64",
    "model.head.groups=8",
]
TINY_OVERRIDES = {
    "dino": TINY + TINY_ENCODER,
    "deformable_detr": TINY + TINY_ENCODER,
    "focus_detr": TINY + TINY_SELECTIVE_ENCODER + TINY_DUAL_ATTENTION,
    "sparse_detr": TINY + TINY_SELECTIVE_ENCODER,
    "lite_dino": TINY + TINY_INTERLEAVED_ENCODER,
    "ddq_detr": TINY + TINY_ENCODER,
    "ddq_fcn": TINY_FCN,
    "ddq_rcnn": TINY_FCN + ["model.stage_ffn_dim=128"],
    "focus_ddq_detr": TINY + TINY_SELECTIVE_ENCODER + TINY_DUAL_ATTENTION,
}


def _coco_ap(records: list[dict], outputs: list[dict]) -> float:
    """COCO AP@[.5:.95] of ``outputs`` on the ground truth of ``records``."""
    images, annotations, results = [], [], []
    for image_id, (record, output) in enumerate(zip(records, outputs, strict=True)):
        images.append({"id": image_id, "height": record["height"], "width": record["width"]})
        for a in record["annotations"]:
            x0, y0, w, h = BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYWH_ABS)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "category_id": a["category_id"],
                    "iscrowd": 0,
                }
            )
        instances = output["instances"]
        for (x0, y0, x1, y1), score, label in zip(
            instances.pred_boxes.tensor.tolist(),
            instances.scores.tolist(),
            instances.pred_classes.tolist(),
            strict=True,
        ):
            results.append(
                {
                    "image_id": image_id,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                    "category_id": label,
                }
            )
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i} for i in range(5)],
    }
    truth.createIndex()
    evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return float(evaluation.stats[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tiny_model_memorises_a_few_images(name):
    records = [r for r in DatasetCatalog.get("shapes_train")[:8] if 2 <= len(r["annotations"]) <= 5]
    records = records[:2]
    assert len(records) == 2
    mapper = DetrDatasetMapper(
        is_train=True, min_sizes=(256,), max_size=256, flip_prob=0.0, crop_prob=0.0
    )
    batch = [mapper(copy.deepcopy(r)) for r in records]

    cfg = LazyConfig.load(str(REPO / CONFIGS[name]))
    cfg = LazyConfig.apply_overrides(cfg, TINY_OVERRIDES[name])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    model.train()
    losses = []
    for _ in range(250):
        loss = sum(model(batch).values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.4 * np.mean(losses[:10])

    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in b.items() if k != "instances"} for b in batch])
    assert _coco_ap(records, outputs) >= 0.5
