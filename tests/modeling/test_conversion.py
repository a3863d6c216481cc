"""Checkpoint conversion: state dicts laid out like the official DINO / Deformable DETR,
detrex, mmdetection (DDQ-DETR) and torchvision checkpoints (synthesised here from our models'
tensors with the key names and shapes of the official code) convert to exactly our keys,
shapes and values, and load strictly; unexpected, missing, mis-shaped and inconsistent
entries raise errors naming them; Detectron2 loads c2-named ImageNet ``.pkl`` files on its
own."""

import importlib.util
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.modeling import build_resnet
from detr_efficient.modeling.conversion import (
    COCO_CATEGORY_IDS,
    SOURCES,
    ConversionError,
    class_rows,
    convert,
    convert_with_report,
)

COCO = list(COCO_CATEGORY_IDS)


def randomised(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with every float tensor redrawn, so that no two heads (zero
    initialised, constant biases) can be confused by a wrong mapping."""
    gen = torch.Generator().manual_seed(0)
    return {
        k: torch.empty(v.shape).uniform_(generator=gen) if v.is_floating_point() else v.clone()
        for k, v in model.state_dict().items()
    }


def assert_same(converted: dict, expected: dict) -> None:
    """Same keys, shapes and values (renamed tensors are passed through, not copied)."""
    assert set(converted) == set(expected)
    for k, v in expected.items():
        assert converted[k].shape == v.shape, k
        assert converted[k] is v or torch.equal(converted[k], v), k


def on_resnet18(path: str, *overrides: str) -> torch.nn.Module:
    """The model of config ``path`` on a ResNet-18 (basic blocks: the other torchvision
    naming; and a lighter test), with further ``overrides``."""
    cfg = LazyConfig.load(path)
    cfg = LazyConfig.apply_overrides(
        cfg, ["model.backbone.depth=18", "model.neck.in_channels=[128,256,512]", *overrides]
    )
    return instantiate(cfg.model)


@pytest.fixture(scope="module")
def dino():
    model = instantiate(LazyConfig.load("configs/dino/models/dino_r50.py").model)
    return model, randomised(model)


@pytest.fixture(scope="module")
def deformable():
    """The reference Deformable DETR on a ResNet-18."""
    model = on_resnet18("configs/deformable_detr/models/deformable_detr_r50.py")
    return model, randomised(model)


@pytest.fixture(scope="module")
def lite():
    """Lite-DINO H3L1-(2+1)x3 with KDA on a ResNet-18."""
    model = on_resnet18("configs/lite_detr/models/lite_dino_r50.py")
    return model, randomised(model)


@pytest.fixture(scope="module")
def focus():
    """The small Focus-DETR (2 encoder, 3 decoder layers, width 128)."""
    model = instantiate(LazyConfig.load("configs/focus_detr/models/focus_detr_shapes.py").model)
    return model, randomised(model)


@pytest.fixture(scope="module")
def ddq():
    """DDQ-DETR R50 (one head per decoder layer, as mmdet trains it); mmdet's neck convs have
    no bias, so ours are zero."""
    model = instantiate(LazyConfig.load("configs/ddq/models/ddq_detr_r50.py").model)
    return model, zero_neck_biases(randomised(model))


def zero_neck_biases(ours: dict) -> dict:
    return {
        k: torch.zeros_like(v) if re.fullmatch(r"neck\.\w+\.\d+\.0\.bias", k) else v
        for k, v in ours.items()
    }


# --- official layouts, written from the official code ---------------------------------------


def torchvision_name(key: str) -> str:
    """``backbone.res3.1.conv2.norm.running_mean`` → ``layer2.1.bn2.running_mean`` (torchvision)."""
    parts = key.split(".")[1:]
    if parts[0] == "stem":
        return "conv1.weight" if parts[2] == "weight" else f"bn1.{parts[3]}"
    head = f"layer{int(parts[0][3:]) - 1}.{parts[1]}."
    module, rest = parts[2], parts[3:]
    if module == "shortcut":
        return head + ("downsample.0.weight" if rest == ["weight"] else f"downsample.1.{rest[1]}")
    k = module[-1]
    return head + (f"conv{k}.weight" if rest == ["weight"] else f"bn{k}.{rest[1]}")


def coco_slots(t: torch.Tensor, slots: int = 91) -> torch.Tensor:
    """An official COCO-id-indexed table holding our 80 rows at their category ids (the
    unused ids get junk)."""
    out = torch.randn(slots, *t.shape[1:])
    out[COCO] = t
    return out


def rename_layer(rest: str, table: dict[str, str]) -> str:
    for ours, theirs in table.items():
        if rest.startswith(ours):
            return theirs + rest[len(ours) :]
    raise AssertionError(rest)


OFFICIAL_ENC = {"norm.": "norm1.", "ffn.linear1.": "linear1.", "ffn.linear2.": "linear2."}
OFFICIAL_ENC |= {"ffn.norm.": "norm2.", "self_attn.": "self_attn."}
# Lite DETR's full layers: the low-level tokens' FFN (``small_expand``)
OFFICIAL_ENC |= {"low_ffn.linear1.": "linear12.", "low_ffn.linear2.": "linear22."}
OFFICIAL_ENC |= {"low_ffn.norm.": "norm22."}
OFFICIAL_DEC = {"self_attn.": "self_attn.", "norm_self.": "norm2.", "cross_attn.": "cross_attn."}
OFFICIAL_DEC |= {"norm_cross.": "norm1.", "ffn.linear1.": "linear1.", "ffn.linear2.": "linear2."}
OFFICIAL_DEC |= {"ffn.norm.": "norm3."}
DETREX_ENC = {"self_attn.": "attentions.0.", "norm.": "norms.0.", "ffn.norm.": "norms.1."}
DETREX_ENC |= {"ffn.linear1.": "ffns.0.layers.0.0.", "ffn.linear2.": "ffns.0.layers.1."}
DETREX_DEC = {"self_attn.": "attentions.0.attn.", "norm_self.": "norms.0."}
DETREX_DEC |= {"cross_attn.": "attentions.1.", "norm_cross.": "norms.1.", "ffn.norm.": "norms.2."}
DETREX_DEC |= {"ffn.linear1.": "ffns.0.layers.0.0.", "ffn.linear2.": "ffns.0.layers.1."}


def common_layout(ours: dict, official: bool) -> tuple[dict, dict]:
    """Backbone, neck, encoder and decoder layers in the official (or detrex) names; returns
    (renamed, the rest of ours still to place)."""
    out, rest = {}, {}
    enc, dec = (OFFICIAL_ENC, OFFICIAL_DEC) if official else (DETREX_ENC, DETREX_DEC)
    for k, v in ours.items():
        m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.*)", k)
        n = re.fullmatch(r"neck\.(convs|extra_convs)\.(\d+)\.([01])\.(.*)", k)
        if k.startswith("backbone."):
            out["backbone.0.body." + torchvision_name(k) if official else k] = v
        elif n and official:
            level = int(n[2]) + (3 if n[1] == "extra_convs" else 0)
            out[f"input_proj.{level}.{n[3]}.{n[4]}"] = v
        elif n:
            out[f"neck.{n[1]}.{n[2]}.{'conv' if n[3] == '0' else 'norm'}.{n[4]}"] = v
        elif m:
            table = enc if m[1] == "encoder" else dec
            out[f"transformer.{m[1]}.layers.{m[2]}.{rename_layer(m[3], table)}"] = v
        else:
            rest[k] = v
    return out, rest


def heads(out: dict, kind: str, index: int, prefix: str, tensors: dict) -> None:
    """``{kind}_embed.{index}`` and its ``transformer.decoder`` alias from ``prefix.*``."""
    for k, v in tensors.items():
        if k.startswith(prefix + "."):
            name = f"{kind}_embed.{index}{k[len(prefix) :]}"
            out[name] = out[f"transformer.decoder.{name}"] = v


def official_dino(ours: dict, layers: int = 6) -> dict:
    out, rest = common_layout(ours, official=True)
    renames = {
        "level_embed": "transformer.level_embed",
        "query_content.weight": "transformer.tgt_embed.weight",
        "proposals.output.": "transformer.enc_output.",
        "proposals.norm.": "transformer.enc_output_norm.",
        "enc_box_head.": "transformer.enc_out_bbox_embed.",
        "decoder.ref_point_head.": "transformer.decoder.ref_point_head.",
        "decoder.norm.": "transformer.decoder.norm.",
    }
    for k, v in rest.items():
        if k.startswith("enc_class_head."):
            out["transformer.enc_out_class_embed." + k.split(".")[-1]] = coco_slots(v)
        elif k == "denoising.label_embed.weight":
            out["label_enc.weight"] = coco_slots(v, 92)  # dn_labelbook_size 91, + 1
        elif not k.startswith(("class_head.", "box_head.")):
            out[rename_layer(k, renames)] = v
    class_head = {k: coco_slots(v) for k, v in rest.items() if k.startswith("class_head.")}
    for i in range(layers):  # dec_pred_{class,bbox}_embed_share: one module, saved per layer
        heads(out, "class", i, "class_head", class_head)
        heads(out, "bbox", i, "box_head", rest)
    return out


def official_deformable(ours: dict, layers: int = 6) -> dict:
    out, rest = common_layout(ours, official=True)
    renames = {
        "level_embed": "transformer.level_embed",
        "proposals.output.": "transformer.enc_output.",
        "proposals.norm.": "transformer.enc_output_norm.",
        "query_proj.": "transformer.pos_trans.",
        "query_norm.": "transformer.pos_trans_norm.",
    }
    for k, v in rest.items():
        if not k.startswith(("class_heads.", "box_heads.")):
            out[rename_layer(k, renames)] = v
    for i in range(layers + 1):
        cls = {k: v for k, v in rest.items() if k.startswith(f"class_heads.{i}.")}
        if i < layers:
            cls = {k: coco_slots(v) for k, v in cls.items()}
        else:  # class-agnostic encoder head: our rows are its first 80 of 91
            cls = {k: torch.cat([v, torch.randn(11, *v.shape[1:])]) for k, v in cls.items()}
        heads(out, "class", i, f"class_heads.{i}", cls)
        heads(out, "bbox", i, f"box_heads.{i}", rest)
    return out


def detrex_dino(ours: dict, layers: int = 6) -> dict:
    out, rest = common_layout(ours, official=False)
    renames = {
        "level_embed": "transformer.level_embeds",
        "query_content.weight": "transformer.tgt_embed.weight",
        "proposals.output.": "transformer.enc_output.",
        "proposals.norm.": "transformer.enc_output_norm.",
        "decoder.ref_point_head.": "transformer.decoder.ref_point_head.",
        "decoder.norm.": "transformer.decoder.norm.",
        "denoising.label_embed.": "label_enc.",
    }
    for k, v in rest.items():
        if not k.startswith(("class_head", "box_head", "enc_class_head.", "enc_box_head.")):
            out[rename_layer(k, renames)] = v
    shared = "class_head.weight" in ours
    for i in range(layers):  # deep copies, trained apart in detrex: equal only by construction
        heads(out, "class", i, "class_head" if shared else f"class_heads.{i}", rest)
        heads(out, "bbox", i, "box_head" if shared else f"box_heads.{i}", rest)
    heads(out, "class", layers, "enc_class_head", rest)
    heads(out, "bbox", layers, "enc_box_head", rest)
    return out


def detrex_deformable(ours: dict, layers: int = 6) -> dict:
    out, rest = common_layout(ours, official=False)
    renames = {
        "level_embed": "transformer.level_embeds",
        "proposals.output.": "transformer.enc_output.",
        "proposals.norm.": "transformer.enc_output_norm.",
        "query_proj.": "transformer.pos_trans.",
        "query_norm.": "transformer.pos_trans_norm.",
    }
    for k, v in rest.items():
        if not k.startswith(("class_heads.", "box_heads.")):
            out[rename_layer(k, renames)] = v
    for i in range(layers + 1):
        heads(out, "class", i, f"class_heads.{i}", rest)
        heads(out, "bbox", i, f"box_heads.{i}", rest)
    return out


FOCUS_ENC = {"dual_attention.attn.": "attentions.0.attn.", "dual_attention.norm.": "norm2."}
FOCUS_ENC |= {"layer.self_attn.": "attentions.1.", "layer.norm.": "norms.0."}
FOCUS_ENC |= {"layer.ffn.norm.": "norms.1.", "layer.ffn.linear1.": "ffns.0.layers.0.0."}
FOCUS_ENC |= {"layer.ffn.linear2.": "ffns.0.layers.1."}
FOCUS_SELECTOR = {"selector.scorer.embed.": "transformer.enc_mask_predictor.layer1."}
FOCUS_SELECTOR |= {"selector.scorer.head.": "transformer.enc_mask_predictor.layer2."}


def focus_detr(ours: dict) -> dict:
    """detrex ``projects/focus_detr``: detrex DINO's layout, its own encoder layers (dual
    attention ``attentions.0`` + ``norm2``, MSDA ``attentions.1``), the mask predictor, the
    coarsest-first ``alpha`` and the encoder class head aliased per encoder layer twice
    (``enhance_MCSP_layerlist``, ``transformer.encoder.enhance_MCSP``)."""
    dec = {k.split(".")[2] for k in ours if k.startswith("decoder.layers.")}
    enc = {k.split(".")[2] for k in ours if k.startswith("encoder.layers.")}
    dino = {k: v for k, v in ours.items() if not k.startswith(("encoder.", "selector."))}
    out = detrex_dino(dino, len(dec))
    for k, v in ours.items():
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.*)", k)
        if m:
            out[f"transformer.encoder.layers.{m[1]}.{rename_layer(m[2], FOCUS_ENC)}"] = v
        elif k.startswith("selector.scorer."):
            out[rename_layer(k, FOCUS_SELECTOR)] = v
    out["transformer.alpha"] = ours["selector.alpha"].flip(0)
    for i in range(len(enc)):
        for name in ("weight", "bias"):
            head = ours[f"enc_class_head.{name}"]
            out[f"enhance_MCSP_layerlist.{i}.{name}"] = head
            out[f"transformer.encoder.enhance_MCSP.{i}.{name}"] = head
    return out


MMDET_ENC = {"self_attn.": "self_attn.", "norm.": "norms.0.", "ffn.norm.": "norms.1."}
MMDET_ENC |= {"ffn.linear1.": "ffn.layers.0.0.", "ffn.linear2.": "ffn.layers.1."}
MMDET_DEC = {"self_attn.": "self_attn.attn.", "norm_self.": "norms.0.", "ffn.norm.": "norms.2."}
MMDET_DEC |= {"cross_attn.": "cross_attn.", "norm_cross.": "norms.1."}
MMDET_DEC |= {"ffn.linear1.": "ffn.layers.0.0.", "ffn.linear2.": "ffn.layers.1."}


def mmdet_rest(layers: int) -> dict[str, str]:
    """Our names → mmdet's ``DDQDETR`` / ``DDQDETRHead`` for all but the backbone, neck and
    transformer layers: ``n + 2`` class / box branches (decoder layers, encoder, dense
    encoder) and ``n`` aux ones for the dense queries in the decoder."""
    head = "bbox_head."
    table = {"class_heads.": head + "cls_branches.", "box_heads.": head + "reg_branches."}
    table |= {"enc_class_head.": f"{head}cls_branches.{layers}."}
    table |= {"enc_box_head.": f"{head}reg_branches.{layers}."}
    table |= {"dense_enc_class_head.": f"{head}cls_branches.{layers + 1}."}
    table |= {"dense_enc_box_head.": f"{head}reg_branches.{layers + 1}."}
    table |= {"dense_class_heads.": head + "aux_cls_branches."}
    table |= {"dense_box_heads.": head + "aux_reg_branches."}
    table |= {"proposals.output.": "memory_trans_fc.", "proposals.norm.": "memory_trans_norm."}
    table |= {"denoising.label_embed.": "dn_query_generator.label_embedding."}
    return table | {
        "level_embed": "level_embed",
        "query_map.": "query_map.",
        "decoder.": "decoder.",
    }


def mmdet_ddq(ours: dict) -> dict:
    """mmdetection 3.x DDQ-DETR: mmdet ``ResNet`` (torchvision names, BatchNorm step
    counters), ``ChannelMapper`` of ``ConvModule`` (``conv`` without bias, ``gn``), mmcv
    layers, the heads of :func:`mmdet_rest` (box branches ``Sequential`` 0/2/4), and the aux
    box branches registered again on the decoder during training."""
    layers = len({k.split(".")[2] for k in ours if k.startswith("decoder.layers.")})
    rest, out = mmdet_rest(layers), {}
    for k, v in ours.items():
        m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.*)", k)
        n = re.fullmatch(r"neck\.(convs|extra_convs)\.(\d+)\.([01])\.(.*)", k)
        if k.startswith("backbone."):
            name = "backbone." + torchvision_name(k)
            if name.endswith("running_mean"):
                out[name.replace("running_mean", "num_batches_tracked")] = torch.tensor(12)
        elif n and n[3] == "0" and n[4] == "bias":
            continue  # ConvModule(bias="auto") before a norm: no bias
        elif n:
            name = f"neck.{n[1]}.{n[2]}.{'conv' if n[3] == '0' else 'gn'}.{n[4]}"
        elif m:
            table = MMDET_ENC if m[1] == "encoder" else MMDET_DEC
            name = f"{m[1]}.layers.{m[2]}.{rename_layer(m[3], table)}"
        else:
            name = rename_layer(k, rest)
        if "reg_branches." in name:  # MLP layers 0/1/2 → Sequential 0/2/4
            name = re.sub(r"\.layers\.(\d)\.", lambda g: f".{2 * int(g[1])}.", name)
        out[name] = v
        if name.startswith("bbox_head.aux_reg_branches."):
            out["decoder." + name[len("bbox_head.") :]] = v
    return out


CASES = {
    "dino-official": ("dino", official_dino),
    "detrex-dino": ("dino", detrex_dino),
    "deformable-detr-official": ("deformable", official_deformable),
    "detrex-deformable-detr": ("deformable", detrex_deformable),
    "focus-detr": ("focus", focus_detr),
    "lite-detr": ("lite", official_dino),  # the official DINO layout with Lite's extra keys
    "ddq-detr-mmdet": ("ddq", mmdet_ddq),
}


def case(request, source):
    fixture, layout = CASES[source]
    model, ours = request.getfixturevalue(fixture)
    return model, ours, layout(ours)


# --- round trips ----------------------------------------------------------------------------


def test_every_source_is_tested():
    # detr-distill-student: tests/modeling/test_detr_distill.py
    assert set(SOURCES) == {*CASES, "torchvision-resnet", "detr-distill-student"}


@pytest.mark.parametrize("source", sorted(CASES))
def test_detector_round_trip(request, source):
    model, ours, theirs = case(request, source)
    report = convert_with_report(theirs, source, reference=model)
    converted = report.state_dict
    assert_same(converted, ours)
    assert set(report.mapped) | set(report.dropped) == set(theirs)
    assert not set(report.mapped) & set(report.dropped)
    model.load_state_dict(converted, strict=True)
    assert f"{len(converted)} tensors" in report.summary()


def test_official_dino_report(dino):
    model, ours = dino
    report = convert_with_report(official_dino(ours), "dino-official", reference=model)
    assert report.mapped["transformer.enc_out_class_embed.weight"] == "enc_class_head.weight"
    assert report.mapped["label_enc.weight"] == "denoising.label_embed.weight"
    assert report.mapped["backbone.0.body.layer1.0.downsample.1.running_var"] == (
        "backbone.res2.0.shortcut.norm.running_var"
    )
    assert report.mapped["input_proj.3.1.weight"] == "neck.extra_convs.0.1.weight"
    assert report.mapped["transformer.decoder.layers.2.norm2.bias"] == (
        "decoder.layers.2.norm_self.bias"
    )
    # Layers 1..5 of the shared heads (2 class + 6 box tensors each) and the 6 x 8 aliases.
    shared = [k for k in report.dropped if k.startswith(("class_embed", "bbox_embed"))]
    assert len(shared) == 5 * (2 + 6)
    aliases = [k for k in report.dropped if k.startswith("transformer.decoder.")]
    assert len(aliases) == 6 * (2 + 6)
    assert any("temperature=20" in note for note in report.notes)


def test_coco_rows_person_first_toothbrush_last():
    head = torch.arange(91, dtype=torch.float32)[:, None].repeat(1, 3)  # row r says "id r"
    rows = class_rows(91)
    picked = head[rows]
    assert picked.shape == (80, 3)
    assert picked[0, 0] == 1 and picked[79, 0] == 90  # person, toothbrush
    assert torch.equal(class_rows(80), torch.arange(80))


def test_coco_ids_are_detectron2_order():
    from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

    ids = [c["id"] for c in COCO_CATEGORIES if c["isthing"]]
    assert list(COCO_CATEGORY_IDS) == ids
    assert COCO_CATEGORIES[0]["name"] == "person" and COCO_CATEGORIES[79]["name"] == "toothbrush"


def test_dino_class_remap_values(dino):
    model, ours = dino
    theirs = official_dino(ours)
    theirs["class_embed.0.bias"][:] = torch.arange(91.0)  # aliases share the tensor
    converted = convert(theirs, "dino-official")
    assert converted["class_head.bias"][0] == 1 and converted["class_head.bias"][79] == 90
    assert torch.equal(converted["class_head.bias"], torch.tensor(COCO, dtype=torch.float32))


# --- torchvision / Detectron2 ImageNet weights --------------------------------------------


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_resnet(dino, depth):
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):  # the official names and shapes, without the init cost
        names = getattr(torchvision.models, f"resnet{depth}")().state_dict()
    tv = {k: torch.rand(v.shape).to(v.dtype) for k, v in names.items()}
    backbone = dino[0].backbone if depth == 50 else build_resnet(depth, out_features=("res5",))
    report = convert_with_report(tv, "torchvision-resnet")
    converted = report.state_dict
    expected = {"backbone." + k for k in backbone.state_dict()}
    assert set(converted) == expected
    assert report.dropped["fc.weight"] == report.dropped["fc.bias"]
    assert sum("num_batches_tracked" in k for k in report.dropped) == sum(
        "num_batches_tracked" in k for k in tv
    )
    assert_same(converted, {ours: tv[theirs] for theirs, ours in report.mapped.items()})
    assert report.mapped["layer4.2.bn3.running_mean" if depth == 50 else "layer4.1.bn2.bias"]
    backbone.load_state_dict({k[len("backbone.") :]: v for k, v in converted.items()})
    if depth == 50:  # a subset of the detector's keys, shapes checked
        convert(tv, "torchvision-resnet", reference=dino[0])


def test_ddp_prefix_is_stripped():
    tv = {"module.conv1.weight": torch.zeros(64, 3, 7, 7), "module.fc.bias": torch.zeros(10)}
    assert set(convert(tv, "torchvision-resnet")) == {"backbone.stem.conv1.weight"}


def test_detectron2_loads_c2_imagenet_pkl(tmp_path):
    """MSRA / Detectron ImageNet ``.pkl`` files (c2 names, numpy blobs, an ``fc1000`` head)
    load through Detectron2's DetectionCheckpointer unchanged: no converter needed."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling.backbone.resnet import BasicStem, BottleneckBlock, ResNet

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            stem = BasicStem(3, 8, norm="FrozenBN")
            stage = ResNet.make_stage(
                BottleneckBlock,
                2,
                in_channels=8,
                bottleneck_channels=4,
                out_channels=16,
                norm="FrozenBN",
                stride_in_1x1=True,
            )
            self.backbone = ResNet(stem, [stage], out_features=["res2"])
            self.head = torch.nn.Linear(16, 2)

    model = Holder()
    rng = np.random.default_rng(0)

    def blob(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    blobs = {"conv1_w": blob(8, 3, 7, 7), "res_conv1_bn_s": blob(8), "res_conv1_bn_b": blob(8)}
    blobs |= {"res2_0_branch1_w": blob(16, 8, 1, 1), "res2_0_branch1_bn_s": blob(16)}
    blobs |= {"res2_0_branch1_bn_b": blob(16), "fc1000_w": blob(1000, 16), "fc1000_b": blob(1000)}
    for block, cin in ((0, 8), (1, 16)):
        for branch, shape in (("2a", (4, cin, 1, 1)), ("2b", (4, 4, 3, 3)), ("2c", (16, 4, 1, 1))):
            name = f"res2_{block}_branch{branch}"
            blobs |= {f"{name}_w": blob(*shape), f"{name}_bn_s": blob(shape[0])}
            blobs[f"{name}_bn_b"] = blob(shape[0])
    path = tmp_path / "R-tiny.pkl"
    path.write_bytes(pickle.dumps(blobs))
    DetectionCheckpointer(model).load(str(path))

    state = model.state_dict()
    expected = {
        "backbone.stem.conv1.weight": "conv1_w",
        "backbone.stem.conv1.norm.weight": "res_conv1_bn_s",
        "backbone.res2.0.shortcut.norm.bias": "res2_0_branch1_bn_b",
        "backbone.res2.1.conv2.weight": "res2_1_branch2b_w",
        "backbone.res2.1.conv3.norm.weight": "res2_1_branch2c_bn_s",
    }
    for ours, theirs in expected.items():
        assert torch.equal(state[ours], torch.from_numpy(blobs[theirs])), ours
    # Caffe2 folds BN into an affine channel: running statistics stay at identity.
    assert torch.equal(state["backbone.res2.0.conv1.norm.running_var"], torch.ones(4))


# --- errors ---------------------------------------------------------------------------------


def test_unknown_key(dino):
    model, ours = dino
    theirs = official_dino(ours) | {"transformer.mystery.weight": torch.zeros(3)}
    with pytest.raises(ConversionError, match=r"transformer\.mystery\.weight"):
        convert(theirs, "dino-official")


def test_wrong_source(deformable):
    _, ours = deformable
    with pytest.raises(ConversionError, match="neither mapped"):
        convert(detrex_deformable(ours), "deformable-detr-official")
    with pytest.raises(ConversionError, match="unknown source"):
        convert({}, "dino-v9")


def test_shape_mismatch_names_key(dino):
    model, ours = dino
    theirs = official_dino(ours)
    theirs["transformer.tgt_embed.weight"] = torch.zeros(300, 256)
    with pytest.raises(ConversionError, match=r"query_content\.weight: \[300, 256\] vs model"):
        convert(theirs, "dino-official", reference=model)


def test_missing_key_names_it(deformable):
    model, ours = deformable
    theirs = official_deformable(ours)
    del theirs["transformer.pos_trans_norm.bias"]
    with pytest.raises(ConversionError, match=r"lacks: 'query_norm\.bias'"):
        convert(theirs, "deformable-detr-official", reference=model)


def test_partial_source_checks_subset_only(dino):
    tv = {"conv1.weight": torch.zeros(64, 3, 5, 5)}
    with pytest.raises(ConversionError, match=r"backbone\.stem\.conv1\.weight: \[64, 3, 5, 5\]"):
        convert(tv, "torchvision-resnet", reference=dino[0])


def test_detrex_dino_per_layer_heads_load_into_an_unshared_dino():
    """detrex trains one class / box head per decoder layer: they convert into a DINO built
    with ``share_heads=False``, layer by layer."""
    model = on_resnet18("configs/dino/models/dino_r50.py", "model.share_heads=False")
    ours = randomised(model)
    theirs = detrex_dino(ours)
    assert not torch.equal(
        theirs["bbox_embed.3.layers.0.weight"], theirs["bbox_embed.0.layers.0.weight"]
    )
    converted = convert(theirs, "detrex-dino", reference=model)
    assert set(converted) == set(ours)
    for key, value in ours.items():
        assert torch.equal(converted[key], value), key
    model.load_state_dict(converted, strict=True)


def test_alias_mismatch(deformable):
    _, ours = deformable
    theirs = detrex_deformable(ours)
    theirs["transformer.decoder.class_embed.2.bias"] = torch.zeros(80)
    with pytest.raises(ConversionError, match=r"class_embed\.2\.bias' differs"):
        convert(theirs, "detrex-deformable-detr")


def test_deformable_variants_refused(deformable):
    _, ours = deformable
    theirs = official_deformable(ours)
    single_stage = {k: v for k, v in theirs.items() if "pos_trans" not in k}
    with pytest.raises(ConversionError, match="single-stage"):
        convert(single_stage, "deformable-detr-official")
    no_refine = {k: v for k, v in theirs.items() if "decoder.bbox_embed" not in k}
    with pytest.raises(ConversionError, match="box refinement"):
        convert(no_refine, "deformable-detr-official")


def test_non_tensor_entries():
    with pytest.raises(ConversionError, match="not tensors: 'epoch'"):
        convert({"conv1.weight": torch.zeros(1), "epoch": 3}, "torchvision-resnet")


# --- Focus-DETR -----------------------------------------------------------------------------


def test_focus_detr_report(focus):
    model, ours = focus
    report = convert_with_report(focus_detr(ours), "focus-detr", reference=model)
    mapped = report.mapped
    layer = "transformer.encoder.layers.1."
    assert mapped[layer + "attentions.0.attn.in_proj_weight"] == (
        "encoder.layers.1.dual_attention.attn.in_proj_weight"
    )
    assert mapped[layer + "norm2.bias"] == "encoder.layers.1.dual_attention.norm.bias"
    assert mapped[layer + "attentions.1.value_proj.weight"] == (
        "encoder.layers.1.layer.self_attn.value_proj.weight"
    )
    assert mapped[layer + "norms.0.weight"] == "encoder.layers.1.layer.norm.weight"
    assert mapped[layer + "norms.1.weight"] == "encoder.layers.1.layer.ffn.norm.weight"
    assert mapped["transformer.enc_mask_predictor.layer2.4.bias"] == "selector.scorer.head.4.bias"
    assert mapped["class_embed.3.weight"] == "enc_class_head.weight"
    aliases = [k for k in report.dropped if "enhance_MCSP" in k]
    assert len(aliases) == 2 * 2 * 2  # two lists x 2 encoder layers x (weight, bias)


def test_focus_detr_alpha_reversed(focus):
    """Official ``alpha[0]`` modulates level L-2 (the first finer level it scores after the
    coarsest), so it is our ``alpha[L-2]``; checked on our selector: only that level moves."""
    from types import SimpleNamespace

    from detr_efficient.modeling.token_selection import ForegroundTokenSelector

    _, ours = focus
    theirs = focus_detr(ours)
    theirs["transformer.alpha"] = torch.tensor([0.5, 0.0, 0.0])
    alpha = convert(theirs, "focus-detr")["selector.alpha"]
    assert torch.equal(alpha, torch.tensor([0.0, 0.0, 0.5]))

    torch.manual_seed(0)
    selector = ForegroundTokenSelector(embed_dim=8, num_levels=4).eval()
    shapes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    x = torch.randn(1, sum(h * w for h, w in shapes), 8)
    token_map = SimpleNamespace(
        shapes=shapes, padding_mask=torch.zeros(1, x.shape[1], dtype=torch.bool)
    )
    with torch.no_grad():
        selector.alpha.copy_(alpha)
        modulated = selector(x, token_map).split([h * w for h, w in shapes], dim=1)
        selector.alpha.zero_()
        plain = selector(x, token_map).split([h * w for h, w in shapes], dim=1)
    assert [torch.equal(a, b) for a, b in zip(modulated, plain, strict=True)] == [
        True,
        True,
        False,
        True,
    ]


def test_focus_detr_unknown_key(focus):
    _, ours = focus
    theirs = focus_detr(ours) | {"transformer.encoder.layers.0.norms.2.weight": torch.zeros(128)}
    with pytest.raises(ConversionError, match=r"transformer\.encoder\.layers\.0\.norms\.2\.weight"):
        convert(theirs, "focus-detr")


def test_focus_detr_mcsp_alias_mismatch(focus):
    """``enhance_MCSP`` must be the encoder class head: the official model aliases
    ``class_embed[num_encoder_layers]``, another head when the depths differ."""
    _, ours = focus
    theirs = focus_detr(ours)
    theirs["transformer.encoder.enhance_MCSP.1.weight"] = theirs["class_embed.0.weight"]
    with pytest.raises(ConversionError, match=r"enhance_MCSP\.1\.weight' differs.*class_embed"):
        convert(theirs, "focus-detr")


def test_focus_detr_r50_fits_its_config():
    model = instantiate(LazyConfig.load("configs/focus_detr/models/focus_detr_r50.py").model)
    ours = randomised(model)
    converted = convert(focus_detr(ours), "focus-detr", reference=model)
    assert_same(converted, ours)


def test_focus_detr_per_layer_heads():
    cfg = LazyConfig.load("configs/focus_detr/models/focus_detr_shapes.py")
    model = instantiate(LazyConfig.apply_overrides(cfg, ["model.share_heads=False"]).model)
    ours = randomised(model)
    converted = convert(focus_detr(ours), "focus-detr", reference=model)
    assert_same(converted, ours)


def test_lite_detr_layout_has_kda_and_the_full_layers_narrow_ffn(lite):
    _, ours = lite
    theirs = official_dino(ours)
    full_layers = {int(k.split(".")[3]) for k in theirs if ".norm22." in k}
    assert full_layers == {1, 3, 5}  # H3L1-(2+1)x3: high, full, high, full, high, full
    assert not any("attention_weights" in k for k in theirs)
    assert "transformer.decoder.layers.0.cross_attn.query_proj.weight" in theirs
    report = convert_with_report(theirs, "lite-detr")
    assert report.mapped["transformer.encoder.layers.3.linear12.weight"] == (
        "encoder.layers.3.low_ffn.linear1.weight"
    )
    assert any("H3L1-(2+1)x3" in note for note in report.notes)


def test_lite_detr_checkpoint_into_another_variant_names_the_keys(lite):
    _, ours = lite
    other = on_resnet18(
        "configs/lite_detr/models/lite_dino_r50.py",
        "model.encoder.high_updates=6",  # H3L1-(6+1)x1: the full layer is the last only
        "model.encoder.num_blocks=1",
    )
    with pytest.raises(ConversionError, match=r"encoder\.layers\.1\.low_ffn"):
        convert(official_dino(ours), "lite-detr", reference=other)


def test_lite_detr_checkpoint_is_not_an_official_dino(lite):
    _, ours = lite
    with pytest.raises(ConversionError, match="linear12"):
        convert(official_dino(ours), "dino-official")


# --- DDQ-DETR (mmdetection) -----------------------------------------------------------------


def test_ddq_mmdet_report(ddq):
    model, ours = ddq
    theirs = mmdet_ddq(ours)
    assert not any(k.endswith("conv.bias") for k in theirs if k.startswith("neck."))
    report = convert_with_report(theirs, "ddq-detr-mmdet", reference=model)
    mapped = report.mapped
    assert mapped["bbox_head.cls_branches.6.weight"] == "enc_class_head.weight"
    assert mapped["bbox_head.reg_branches.7.4.bias"] == "dense_enc_box_head.layers.2.bias"
    assert mapped["bbox_head.reg_branches.3.2.weight"] == "box_heads.3.layers.1.weight"
    assert mapped["bbox_head.aux_cls_branches.5.bias"] == "dense_class_heads.5.bias"
    assert mapped["bbox_head.aux_reg_branches.0.0.weight"] == "dense_box_heads.0.layers.0.weight"
    assert mapped["decoder.layers.2.norms.1.bias"] == "decoder.layers.2.norm_cross.bias"
    assert mapped["decoder.layers.4.self_attn.attn.in_proj_weight"] == (
        "decoder.layers.4.self_attn.in_proj_weight"
    )
    assert mapped["encoder.layers.1.ffn.layers.0.0.weight"] == "encoder.layers.1.ffn.linear1.weight"
    assert mapped["neck.extra_convs.0.gn.weight"] == "neck.extra_convs.0.1.weight"
    assert mapped["memory_trans_fc.weight"] == "proposals.output.weight"
    assert mapped["dn_query_generator.label_embedding.weight"] == "denoising.label_embed.weight"
    assert mapped["backbone.layer4.2.bn3.running_var"] == "backbone.res5.2.conv3.norm.running_var"
    aliases = [k for k in report.dropped if k.startswith("decoder.aux_reg_branches.")]
    assert len(aliases) == 6 * 6  # 6 layers x 3 linears x (weight, bias)
    counters = [k for k in report.dropped if k.endswith("num_batches_tracked")]
    assert len(counters) == 53  # the BatchNorms of a ResNet-50
    assert len(report.dropped) == len(aliases) + len(counters)
    zeroed = [k for k in report.state_dict if k.startswith("neck.") and k.endswith("0.bias")]
    assert len(zeroed) == 4 and not any(report.state_dict[k].any() for k in zeroed)
    notes = " ".join(report.notes)
    assert "share_heads=False" in notes and "temperature=20" in notes
    assert "neck.extra_convs.0.0.bias" in notes and "normalised hidden states" in notes


def test_ddq_mmdet_neck_bias_mapped_when_present(ddq):
    _, ours = ddq
    bias = torch.randn(256)
    theirs = mmdet_ddq(ours) | {"neck.convs.1.conv.bias": bias}
    report = convert_with_report(theirs, "ddq-detr-mmdet")
    assert report.state_dict["neck.convs.1.0.bias"] is bias
    assert not report.state_dict["neck.convs.0.0.bias"].any()
    assert "neck.convs.1.0.bias" not in " ".join(report.notes)


def test_ddq_mmdet_unknown_key(ddq):
    _, ours = ddq
    theirs = mmdet_ddq(ours) | {"bbox_head.quality_branches.0.weight": torch.zeros(80, 256)}
    with pytest.raises(ConversionError, match=r"'bbox_head\.quality_branches\.0\.weight'"):
        convert(theirs, "ddq-detr-mmdet")


def test_ddq_mmdet_shape_mismatch_names_key(ddq):
    model, ours = ddq
    theirs = mmdet_ddq(ours) | {"query_map.weight": torch.zeros(128, 256)}
    with pytest.raises(ConversionError, match=r"query_map\.weight: \[128, 256\] vs model"):
        convert(theirs, "ddq-detr-mmdet", reference=model)


def test_ddq_mmdet_missing_key_names_it(ddq):
    model, ours = ddq
    theirs = mmdet_ddq(ours)
    del theirs["memory_trans_norm.bias"]
    with pytest.raises(ConversionError, match=r"lacks: 'proposals\.norm\.bias'"):
        convert(theirs, "ddq-detr-mmdet", reference=model)


def test_ddq_mmdet_refuses_a_head_without_the_dense_branches(ddq):
    """A DINO head (``n + 1`` branches, no aux ones) is not a DDQ-DETR checkpoint."""
    _, ours = ddq
    theirs = {
        k: v
        for k, v in mmdet_ddq(ours).items()
        if not re.match(r"(bbox_head\.(cls|reg)_branches\.7|.*aux_)", k)
    }
    with pytest.raises(ConversionError, match=r"'cls_branches': 8.*'cls_branches': 7"):
        convert(theirs, "ddq-detr-mmdet")


def test_ddq_mmdet_decoder_alias_mismatch(ddq):
    _, ours = ddq
    theirs = mmdet_ddq(ours)
    theirs["decoder.aux_reg_branches.2.0.weight"] = torch.zeros(256, 256)
    with pytest.raises(ConversionError, match=r"aux_reg_branches\.2\.0\.weight' differs"):
        convert(theirs, "ddq-detr-mmdet")


def test_ddq_mmdet_checkpoint_through_the_tool(tmp_path, capsys):
    """A published mmdet checkpoint (``{"meta", "state_dict"}``) through
    tools/convert_checkpoint.py into the small DDQ-DETR (FrozenBN, as mmdet's frozen BN)."""
    config = "configs/ddq/models/ddq_detr_shapes.py"
    overrides = ["model.share_heads=False", "model.backbone.norm=FrozenBN"]
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config), overrides)
    ours = zero_neck_biases(randomised(instantiate(cfg.model)))
    meta = {"mmengine_version": "0.8.4", "epoch": 12, "dataset_meta": {"classes": ("a", "b")}}
    source, output = tmp_path / "ddq_mmdet.pth", tmp_path / "ddq_ours.pth"
    torch.save({"meta": meta, "state_dict": mmdet_ddq(ours)}, source)
    spec = importlib.util.spec_from_file_location(
        "_convert_checkpoint", Path(__file__).resolve().parents[2] / "tools/convert_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = ["--source", "ddq-detr-mmdet", "--input", source, "--output", output]
    assert tool.main([*map(str, argv), "--config-file", config, *overrides]) == 0
    assert f"fits {config}" in capsys.readouterr().out
    assert_same(torch.load(output, weights_only=True)["model"], ours)
