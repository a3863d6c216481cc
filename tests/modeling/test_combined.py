"""Focus-DDQ-DETR: exactly Focus-DETR's encoder and DDQ-DETR's decoding, checked against the
two detectors themselves carrying the same weights."""

import sys
from pathlib import Path

import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.layers import KeyAwareDeformableAttention

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _build(path: str):
    torch.manual_seed(0)
    return instantiate(LazyConfig.load(str(REPO / path)).model)


def _with_weights_of(model, source) -> set[str]:
    """Load ``source``'s tensors that ``model`` shares; the names ``model`` has beyond them."""
    ours = source.state_dict()
    theirs = model.state_dict()
    model.load_state_dict({k: v for k, v in ours.items() if k in theirs}, strict=False)
    return set(theirs) - set(ours)


def _models():
    combined = _build("configs/combined/models/focus_ddq_detr_shapes.py")
    focus = _build("configs/focus_detr/models/focus_detr_shapes.py")
    ddq = _build("configs/ddq/models/ddq_detr_shapes.py")
    focus_only = _with_weights_of(focus, combined)
    ddq_only = _with_weights_of(ddq, combined)
    # Focus-DETR's learned query content is the one thing DDQ-DETR replaces (by query_map);
    # DDQ-DETR's own encoder is DINO's, which Focus-DETR's selective encoder replaces.
    assert focus_only == {"query_content.weight"}
    assert ddq_only and all(k.startswith("encoder.") for k in ddq_only)
    return combined, focus, ddq


def test_encodes_like_focus_detr_and_decodes_like_ddq_detr():
    combined, focus, ddq = _models()
    for model in (combined, focus, ddq):
        model.eval()
    batch = _batch()
    with torch.no_grad():
        images, token_map, scores, encoding = combined.encode_sparse(batch)
        _, _, focus_scores, focus_encoding = focus.encode_sparse(batch)
        expected = ddq.decode(images, token_map, encoding.memory, batch, None)
        detections = combined(batch)
    torch.testing.assert_close(scores, focus_scores, rtol=0, atol=0)
    torch.testing.assert_close(encoding.memory, focus_encoding.memory, rtol=0, atol=0)
    for ours, theirs in zip(detections, expected, strict=True):
        ours, theirs = ours["instances"], theirs["instances"]
        torch.testing.assert_close(ours.pred_boxes.tensor, theirs.pred_boxes.tensor)
        torch.testing.assert_close(ours.scores, theirs.scores)
        assert torch.equal(ours.pred_classes, theirs.pred_classes)


def test_training_has_both_methods_losses_and_every_parameter_learns():
    combined, focus, ddq = _models()
    for model in (combined, focus, ddq):
        model.train()
    torch.manual_seed(1)
    losses = combined(_batch())
    with torch.no_grad():
        expected = set(focus(_batch())) | set(ddq(_batch()))
    assert set(losses) == expected
    assert "loss_foreground" in losses and "loss_dense_class" in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [n for n, p in combined.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_key_aware_attention_drops_into_focus_ddq_detrs_encoder_from_the_command_line():
    cfg = LazyConfig.load(str(REPO / "configs/combined/focus_ddq_detr_shapes_cpu.py"))
    kda = "detr_efficient.layers.KeyAwareDeformableAttention"
    cfg = LazyConfig.apply_overrides(cfg, [f"model.encoder.layer.layer.self_attn._target_={kda}"])
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    attention = {type(layer.layer.self_attn) for layer in model.encoder.layers}
    assert attention == {KeyAwareDeformableAttention}
    model.train()
    losses = model(_batch())
    assert "loss_foreground" in losses and "loss_dense_class" in losses
    sum(losses.values()).backward()
    assert all(
        layer.layer.self_attn.query_proj.weight.grad is not None for layer in model.encoder.layers
    )
