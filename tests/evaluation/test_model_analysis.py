"""Flop handles of the custom ops (on the attention modules alone) and the analysis helpers."""

import pytest
import torch
from torch import nn

from detr_efficient.evaluation import (
    analyze_flops,
    count_flops,
    count_parameters,
    dummy_inputs,
    encoder_flops,
    key_aware_deform_attn_flops,
    load_checkpoint,
    measure_speed,
    ms_deform_attn_flops,
    top_level_flops,
)
from detr_efficient.layers import KeyAwareDeformableAttention, MultiScaleDeformableAttention

# B=2, Q=5, C=32, H=2 (D=16), L=2 levels of 4x4 and 2x2 (S=20), P=3.
B, Q, C, H, L, P = 2, 5, 32, 2, 2, 3
D, S = C // H, 16 + 4


class Call(nn.Module):
    """Calls an attention module on fixed levels with (query, value, reference_points)."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.attention = attention
        self.register_buffer("shapes", torch.tensor([[4, 4], [2, 2]]))
        self.register_buffer("starts", torch.tensor([0, 16]))

    def forward(self, query, value, reference_points):
        return self.attention(
            query,
            value,
            reference_points=reference_points,
            spatial_shapes=self.shapes,
            level_start_index=self.starts,
        )


def inputs():
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(B, Q, C, generator=generator),
        torch.randn(B, S, C, generator=generator),
        torch.rand(B, Q, L, 2, generator=generator),
    )


def test_formulas_by_hand():
    # 2*5*2*2*3 = 120 sampled points of 16 channels.
    assert ms_deform_attn_flops(B, Q, H, L, P, D) == 5 * 120 * 16 == 9600
    assert key_aware_deform_attn_flops(B, Q, H, L, P, D) == 6 * 120 * 16
    assert key_aware_deform_attn_flops(B, Q, H, L, P, D, shared_key=False) == 10 * 120 * 16


def test_msda_module_count():
    module = Call(MultiScaleDeformableAttention(C, H, L, P)).eval()
    total, by_module = count_flops(module, inputs())
    linears = {
        "attention.sampling_offsets": B * Q * C * (H * L * P * 2),
        "attention.attention_weights": B * Q * C * (H * L * P),
        "attention.value_proj": B * S * C * C,
        "attention.output_proj": B * Q * C * C,
    }
    for name, flops in linears.items():
        assert by_module[name] == flops, name
    msda = 5 * B * Q * H * L * P * D
    assert total == by_module[""] == sum(linears.values()) + msda
    assert by_module["attention"] == total


def test_msda_count_follows_value_proj_ratio():
    module = Call(MultiScaleDeformableAttention(C, H, L, P, value_proj_ratio=0.5)).eval()
    total, by_module = count_flops(module, inputs())
    linear = sum(v for k, v in by_module.items() if k.count(".") == 1)
    assert total - linear == ms_deform_attn_flops(B, Q, H, L, P, C // 2 // H)


@pytest.mark.parametrize("proj_key", [False, True])
def test_kda_module_count(proj_key):
    module = Call(KeyAwareDeformableAttention(C, H, L, P, proj_key=proj_key)).eval()
    total, by_module = count_flops(module, inputs())
    linears = {
        "attention.sampling_offsets": B * Q * C * (H * L * P * 2),
        "attention.query_proj": B * Q * C * C,
        "attention.value_proj": B * S * C * C,
        "attention.output_proj": B * Q * C * C,
    }
    if proj_key:
        linears["attention.key_proj"] = B * S * C * C
    for name, flops in linears.items():
        assert by_module[name] == flops, name
    kda = (10 if proj_key else 6) * B * Q * H * L * P * D
    assert total == sum(linears.values()) + kda


def test_native_multi_head_attention_is_counted():
    mha = nn.MultiheadAttention(C, 4, batch_first=True).eval()

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    x = torch.randn(B, Q, C)
    total, _ = count_flops(SelfAttention(), (x,))
    # q, k, v and output projections, then q k^T and attn v over all heads.
    assert total == 4 * B * Q * C * C + 2 * B * Q * Q * C


def test_scaled_dot_product_attention_is_counted():
    class Attend(nn.Module):
        def forward(self, q, k, v):
            return nn.functional.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    total, _ = count_flops(Attend(), (q, k, v))
    assert total == 2 * 3 * 5 * 7 * (8 + 4)


def test_module_selectors():
    by_module = {
        "": 100,
        "backbone": 40,
        "transformer": 60,
        "transformer.encoder": 30,
        "transformer.encoder.layers.0": 15,
        "transformer.decoder": 20,
        "head.text_encoder": 5,
    }
    assert top_level_flops(by_module) == {"backbone": 40, "transformer": 60}
    assert encoder_flops(by_module) == {"transformer.encoder": 30, "head.text_encoder": 5}
    assert encoder_flops({"": 1, "backbone": 1}) == {}


def test_count_parameters_shared_counted_once():
    shared = nn.Linear(4, 4)
    model = nn.Module()
    model.a = nn.Sequential(shared, nn.Linear(4, 2))
    model.b = shared
    model.scale = nn.Parameter(torch.ones(3), requires_grad=False)
    counts = count_parameters(model)
    assert counts["total"] == 20 + 10 + 3
    assert counts["trainable"] == 30
    assert counts["by_child"] == {"a": 30, "": 3}
    assert sum(counts["by_child"].values()) == counts["total"]


def test_dummy_inputs():
    batch = dummy_inputs(2, (17, 23))
    assert len(batch) == 2
    assert batch[0]["image"].shape == (3, 17, 23) and batch[0]["image"].dtype == torch.uint8
    assert (batch[0]["height"], batch[0]["width"]) == (17, 23)
    assert not torch.equal(batch[0]["image"], batch[1]["image"])
    default = dummy_inputs()[0]
    assert default["image"].shape == (3, 850, 1040)
    with pytest.raises(ValueError, match="batch_size"):
        dummy_inputs(0)
    with pytest.raises(ValueError, match="size"):
        dummy_inputs(1, (10,))


def test_measure_speed_cpu():
    model = nn.Sequential(nn.Linear(8, 8)).eval()

    class ListModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, batch):
            return [self.inner(x["image"].float().flatten()[:8]) for x in batch]

    stats = measure_speed(ListModel(), dummy_inputs(3, (4, 4)), warmup=1, iters=2)
    assert stats["images_per_iter"] == 3 and stats["iters"] == 2
    assert stats["fps"] > 0 and stats["device"] == "cpu"
    assert stats["peak_memory_mb"] >= 0 and stats["memory_source"].startswith("cpu")
    with pytest.raises(ValueError, match="iters"):
        measure_speed(ListModel(), [], iters=0)


@pytest.mark.parametrize(
    "path", ["configs/dino/models/dino_shapes.py", "configs/ddq/models/ddq_fcn_shapes.py"]
)
def test_measure_training_step_trains_on_random_boxes(path):
    from pathlib import Path

    from detectron2.config import LazyConfig, instantiate

    from detr_efficient.evaluation import dummy_training_inputs, measure_training_step

    repo = Path(__file__).resolve().parents[2]
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(str(repo / path)).model)
    inputs = dummy_training_inputs(2, (64, 80), model.num_classes, boxes_per_image=3)
    boxes = inputs[1]["instances"].gt_boxes.tensor
    assert boxes.shape == (3, 4) and (boxes[:, 2:] > boxes[:, :2]).all()
    assert (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 64).all()
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    stats = measure_training_step(model, inputs, warmup=0, iters=1)
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert stats["images_per_iter"] == 2 and stats["iters"] == 1
    assert stats["seconds_per_iter"] > 0 and stats["memory_source"].startswith("cpu")
    assert not model.training
    stats = measure_training_step(model, inputs, warmup=0, iters=1, autocast=torch.bfloat16)
    assert stats["seconds_per_iter"] > 0
    with pytest.raises(ValueError, match="iters"):
        measure_training_step(model, inputs, iters=0)


def test_encoder_token_counts_of_dino_focus_detr_and_lite_dino():
    from pathlib import Path

    from detectron2.config import LazyConfig, instantiate

    from detr_efficient.evaluation import encoder_token_counts

    repo = Path(__file__).resolve().parents[2]
    inputs = dummy_inputs(1, (128, 96))
    counts = {}
    for name, path in (
        ("dino", "configs/dino/models/dino_shapes.py"),
        ("focus", "configs/focus_detr/models/focus_detr_shapes.py"),
        ("lite", "configs/lite_detr/models/lite_dino_shapes.py"),
    ):
        torch.manual_seed(0)
        model = instantiate(LazyConfig.load(str(repo / path)).model).eval()
        counts[name] = encoder_token_counts(model, inputs)
    tokens = 16 * 12 + 8 * 6 + 4 * 3 + 2 * 2  # strides 8..64 over 128 x 96
    assert counts["dino"] == {
        "tokens": tokens,
        "valid": [tokens],
        "kept_per_layer": [[tokens], [tokens]],
        "kept_fraction": 1.0,
    }
    kept = [int(tokens * r) + 1 for r in (0.5, 0.3)]  # the shapes config's keep ratios
    assert counts["focus"]["kept_per_layer"] == [[k] for k in kept]
    assert counts["focus"]["kept_fraction"] == pytest.approx(sum(kept) / (2 * tokens))
    high = tokens - 16 * 12  # H3L1: the stride-16..64 maps, then every token
    assert counts["lite"]["kept_per_layer"] == [[high], [tokens]]


def test_focus_detr_traces_when_fewer_tokens_are_kept_than_dual_attention_takes():
    from pathlib import Path

    from detectron2.config import LazyConfig, instantiate

    repo = Path(__file__).resolve().parents[2]
    torch.manual_seed(0)
    path = repo / "configs/focus_detr/models/focus_detr_shapes.py"
    model = instantiate(LazyConfig.load(str(path)).model).eval()
    report = analyze_flops(model, (dummy_inputs(1, (64, 64)),))  # 43 kept < top_k 50
    assert report.by_module["encoder"] > 0


@pytest.mark.parametrize("name", ["ddq_fcn", "ddq_rcnn"])
def test_the_dense_ddq_detectors_trace_for_flops(name):
    from pathlib import Path

    from detectron2.config import LazyConfig, instantiate

    repo = Path(__file__).resolve().parents[2]
    torch.manual_seed(0)
    path = repo / f"configs/ddq/models/{name}_shapes.py"
    model = instantiate(LazyConfig.load(str(path)).model).eval()
    report = analyze_flops(model, (dummy_inputs(1, (128, 96)),))
    assert report.by_module["backbone"] > 0 and report.by_module["head"] > 0


class _TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.second = nn.Linear(4, 2)


def test_load_checkpoint_needs_every_weight_for_inference(tmp_path):
    """A checkpoint that leaves weights at their random init is an error (inference), or
    is loaded as far as it goes (an init checkpoint such as a backbone)."""
    source = _TwoLayers()
    full, partial, reshaped = tmp_path / "full.pth", tmp_path / "partial.pth", tmp_path / "r.pth"
    torch.save({"model": source.state_dict()}, full)
    torch.save({"model": {k: v for k, v in source.state_dict().items() if "first" in k}}, partial)
    torch.save({"model": {**source.state_dict(), "second.bias": torch.zeros(3)}}, reshaped)

    model = _TwoLayers()
    load_checkpoint(model, full)
    torch.testing.assert_close(model.second.weight, source.second.weight)
    with pytest.raises(ValueError, match=r"does not fill 2 of the model's 4 weights.*second"):
        load_checkpoint(_TwoLayers(), partial)
    with pytest.raises(ValueError, match=r"does not fill 1 .*second\.bias"):
        load_checkpoint(_TwoLayers(), reshaped)

    model = _TwoLayers()
    kept = model.second.weight.detach().clone()
    load_checkpoint(model, partial, require_every_weight=False)
    torch.testing.assert_close(model.first.weight, source.first.weight)
    torch.testing.assert_close(model.second.weight, kept)
