"""DINO and Deformable DETR end to end on small configs: losses, gradients, detections in
original coordinates, kernels vs the pure-PyTorch attention, bf16, reference sizes."""

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances

REPO = Path(__file__).resolve().parents[2]
SMALL = {
    "dino": "configs/dino/models/dino_shapes.py",
    "deformable_detr": "configs/deformable_detr/models/deformable_detr_shapes.py",
    "focus_detr": "configs/focus_detr/models/focus_detr_shapes.py",
    "sparse_detr": "configs/sparse_detr/models/sparse_detr_shapes.py",
    "lite_dino": "configs/lite_detr/models/lite_dino_shapes.py",
    "ddq_detr": "configs/ddq/models/ddq_detr_shapes.py",
}
REFERENCE_SWITCHES = {
    "dino": ["encoder.layer.self_attn", "decoder.layer.cross_attn"],
    "deformable_detr": ["encoder.layer.self_attn", "decoder.layer.cross_attn"],
    "lite_dino": [
        "encoder.high_layer.self_attn",
        "encoder.full_layer.self_attn",
        "decoder.layer.cross_attn",
    ],
}


def _model(name: str, **overrides):
    cfg = LazyConfig.load(str(REPO / SMALL[name]))
    cfg = LazyConfig.apply_overrides(cfg, [f"{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    return instantiate(cfg.model)


def _sample(height: int, width: int, boxes: list, classes: list, original=None) -> dict:
    instances = Instances((height, width))
    instances.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    instances.gt_classes = torch.tensor(classes, dtype=torch.int64)
    g = torch.Generator().manual_seed(height * 1000 + width)
    oh, ow = original or (height, width)
    return {
        "image": torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g),
        "height": oh,
        "width": ow,
        "instances": instances,
    }


def _batch():
    return [
        _sample(96, 128, [[10, 10, 50, 60], [60, 20, 120, 90]], [1, 3], original=(48, 64)),
        _sample(80, 80, [], []),
    ]


@pytest.mark.parametrize("name", ["dino", "deformable_detr", "lite_dino"])
def test_training_losses_are_finite_and_every_parameter_gets_a_gradient(name):
    model = _model(name)
    model.train()
    losses = model(_batch())
    dn = ["_dn", "_dn_0", "_dn_1"] if name != "deformable_detr" else []
    stages = ["", "_0", "_1", "_enc"] + dn
    expected = {f"loss_{kind}{stage}" for kind in ("class", "bbox", "giou") for stage in stages}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", ["dino", "focus_detr", "ddq_detr"])
def test_a_batch_without_ground_truth_keeps_every_loss_and_parameter(name):
    """Crops can leave a process's whole batch without boxes. It must log the same losses as
    the others (Detectron2 averages the loss dicts of all processes by the first one's keys)
    and give every parameter a gradient (DDP without ``find_unused_parameters``)."""
    model = _model(name).train()
    full = set(model(_batch()))
    empty = [_sample(96, 128, [], []), _sample(80, 80, [], [])]
    losses = model(empty)
    assert set(losses) == full
    assert all(float(losses[k].detach()) == 0.0 for k in losses if "_dn" in k)
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", ["dino", "deformable_detr", "lite_dino", "ddq_detr"])
def test_detections_are_in_original_image_coordinates(name):
    model = _model(name, **{"model.num_detections": 7})
    model.eval()
    with torch.no_grad():
        outputs = model(_batch())
    first, second = (o["instances"] for o in outputs)
    assert first.image_size == (48, 64) and second.image_size == (80, 80)
    assert len(first) == 7 and len(second) == 7
    boxes = first.pred_boxes.tensor
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 64).all()
    assert (boxes[:, 1::2] >= 0).all() and (boxes[:, 1::2] <= 48).all()
    assert ((first.scores >= 0) & (first.scores <= 1)).all()
    assert (first.pred_classes < 5).all()


@pytest.mark.parametrize("name", sorted(REFERENCE_SWITCHES))
def test_kernel_and_reference_attention_give_the_same_model_outputs(name):
    kernel = _model(name)
    reference = _model(name, **{f"model.{p}.use_reference": True for p in REFERENCE_SWITCHES[name]})
    reference.load_state_dict(kernel.state_dict())
    for m in (kernel, reference):
        m.eval()
    with torch.no_grad():
        a, b = kernel(_batch()), reference(_batch())
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x["instances"].scores, y["instances"].scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(
            x["instances"].pred_boxes.tensor, y["instances"].pred_boxes.tensor, atol=1e-3, rtol=0
        )


@pytest.mark.parametrize("name", ["dino", "lite_dino", "ddq_detr"])
def test_trains_under_bf16_autocast(name):
    model = _model(name)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(_batch())
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_training_without_instances_is_a_clear_error():
    model = _model("dino")
    model.train()
    batch = _batch()
    del batch[0]["instances"]
    with pytest.raises(ValueError, match="instances"):
        model(batch)


def _criterion_inputs(model, batch, seed: int = 3):
    """The training losses and the ``outputs`` dict the criterion got, with the denoising
    noise drawn from ``seed``."""
    seen = {}
    criterion_forward = model.criterion.forward

    def spy(outputs, targets):
        seen.update(outputs)
        return criterion_forward(outputs, targets)

    model.criterion.forward = spy
    torch.manual_seed(seed)
    return model(batch), seen


@pytest.mark.parametrize("name", ["dino", "focus_detr"])
def test_dino_encoder_loss_on_all_covers_every_valid_proposal(name):
    """``encoder_loss_on="all"`` (Deformable DETR's two-stage loss) gives the criterion every
    token's proposal with the valid ones as ``query_mask``; at the selected tokens these are
    exactly the ``"selected"`` outputs, and every other loss is unchanged."""
    selected = _model(name, **{"model.encoder_loss_on": '"selected"'}).train()
    every = _model(name, **{"model.encoder_loss_on": '"all"'}).train()
    every.load_state_dict(selected.state_dict())
    proposed = []
    propose = every.propose

    def recording_propose(*args):
        proposed.append(propose(*args))
        return proposed[-1]

    every.propose = recording_propose
    losses_selected, seen_selected = _criterion_inputs(selected, _batch())
    losses_all, seen_all = _criterion_inputs(every, _batch())

    enc_selected, enc_all = seen_selected["enc_outputs"], seen_all["enc_outputs"]
    valid = proposed[0][2]  # the second image is padded: not every proposal is valid
    assert not valid.all()
    assert enc_all["pred_logits"].shape[:2] == valid.shape
    assert torch.equal(enc_all["query_mask"], valid)
    assert "query_mask" not in enc_selected
    index = every.select_proposals(enc_all["pred_logits"].amax(-1), valid)
    for key in ("pred_logits", "pred_boxes"):
        picked = torch.stack([enc_all[key][b, index[b]] for b in range(index.shape[0])])
        torch.testing.assert_close(picked, enc_selected[key])
    for loss in losses_selected:
        if not loss.endswith("_enc"):
            torch.testing.assert_close(losses_all[loss], losses_selected[loss])


def test_dino_rejects_an_unknown_encoder_loss_choice():
    with pytest.raises(ValueError, match="encoder_loss_on"):
        _model("dino", **{"model.encoder_loss_on": '"dense"'})


def test_ddq_detr_refuses_an_encoder_loss_on_every_proposal():
    """DDQ-DETR's encoder loss is over its distinct queries; "all" would be silently ignored."""
    with pytest.raises(ValueError, match="encoder_loss_on"):
        _model("ddq_detr", **{"model.encoder_loss_on": '"all"'})


@pytest.mark.parametrize(
    "path, low, high",
    [
        ("configs/dino/models/dino_r50.py", 46.0e6, 48.0e6),  # DINO-4scale R50: ~47M
        ("configs/deformable_detr/models/deformable_detr_r50.py", 40.0e6, 41.5e6),  # ~40-41M
        ("configs/lite_detr/models/lite_dino_r50.py", 46.5e6, 48.5e6),  # Lite-DINO: 47M
        ("configs/lite_detr/models/lite_deformable_detr_r50.py", 40.5e6, 42.5e6),  # 41M
        ("configs/ddq/models/ddq_detr_r50.py", 46.5e6, 49.5e6),  # DINO + dense heads
    ],
)
def test_reference_configs_have_the_papers_parameter_counts(path, low, high):
    model = instantiate(LazyConfig.load(str(REPO / path)).model)
    count = sum(p.numel() for p in model.parameters())
    assert low <= count <= high


def test_targets_with_a_class_out_of_range_name_the_file():
    model = _model("dino").train()
    bad = _sample(96, 128, [[10, 10, 50, 60]], [model.num_classes])
    bad["file_name"] = "bad_image.jpg"
    with pytest.raises(ValueError, match=r"gt_classes must be in \[0, \d+\).*bad_image.jpg"):
        model([_batch()[0], bad])
