"""tools/convert_checkpoint.py in-process: torchvision ImageNet weights and a detrex-style
Deformable DETR checkpoint through the tool, shape checking against a config (with
overrides), the weights_only / --trust rule, --model-key and mmdet's ``state_dict``, atomic
output and clear errors."""

import argparse
import datetime
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

TINY_DEFORMABLE = """
from detectron2.config import LazyCall as L

from detr_efficient.layers import (
    DeformableDecoderLayer,
    DeformableEncoderLayer,
    MultiScaleDeformableAttention,
    PositionEmbeddingSine,
)
from detr_efficient.modeling import (
    ChannelMapper,
    DeformableDETR,
    DeformableTransformerDecoder,
    DeformableTransformerEncoder,
    build_slim_resnet,
)
from detr_efficient.modeling.criterion import SetCriterion
from detr_efficient.modeling.matcher import HungarianMatcher

attn = L(MultiScaleDeformableAttention)(embed_dim=32, num_heads=2, num_levels=4, num_points=2)
model = L(DeformableDETR)(
    backbone=L(build_slim_resnet)(widths=(8, 16, 32, 64)),
    neck=L(ChannelMapper)(in_channels=(16, 32, 64), out_channels=32, num_outs=4, num_groups=8),
    position_embedding=L(PositionEmbeddingSine)(num_feats=16),
    encoder=L(DeformableTransformerEncoder)(
        layer=L(DeformableEncoderLayer)(self_attn=attn, embed_dim=32, ffn_dim=64), num_layers=2
    ),
    decoder=L(DeformableTransformerDecoder)(
        layer=L(DeformableDecoderLayer)(cross_attn=attn, embed_dim=32, num_heads=2, ffn_dim=64),
        num_layers=2,
        embed_dim=32,
    ),
    criterion=L(SetCriterion)(
        num_classes="${..num_classes}",
        matcher=L(HungarianMatcher)(),
        weight_dict={"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0},
        encoder_binary_class=True,
    ),
    num_classes=5,
    num_queries=10,
    embed_dim=32,
)
"""

TINY_BACKBONE = """
from detectron2.config import LazyCall as L
from torch import nn

from detr_efficient.modeling import build_resnet


class Holder(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(512, 3)


model = L(Holder)(backbone=L(build_resnet)(depth=18, out_features=("res5",)))
"""

# A student and a teacher that both have a backbone, as in DETRDistill.
TINY_PAIR = (
    TINY_BACKBONE
    + """

class Pair(nn.Module):
    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher


model = L(Pair)(student=model, teacher=model)
"""
)

# Ours → detrex (projects/deformable_detr: BaseTransformerLayer, ChannelMapper of ConvNormAct).
DETREX_NAMES = [
    (r"neck\.(\w+)\.(\d+)\.0\.(.*)", r"neck.\1.\2.conv.\3"),
    (r"neck\.(\w+)\.(\d+)\.1\.(.*)", r"neck.\1.\2.norm.\3"),
    (r"level_embed", "transformer.level_embeds"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(.*)", r"transformer.encoder.layers.\1.attentions.0.\2"),
    (r"encoder\.layers\.(\d+)\.norm\.(.*)", r"transformer.encoder.layers.\1.norms.0.\2"),
    (r"encoder\.layers\.(\d+)\.ffn\.norm\.(.*)", r"transformer.encoder.layers.\1.norms.1.\2"),
    (
        r"decoder\.layers\.(\d+)\.self_attn\.(.*)",
        r"transformer.decoder.layers.\1.attentions.0.attn.\2",
    ),
    (r"decoder\.layers\.(\d+)\.norm_self\.(.*)", r"transformer.decoder.layers.\1.norms.0.\2"),
    (r"decoder\.layers\.(\d+)\.cross_attn\.(.*)", r"transformer.decoder.layers.\1.attentions.1.\2"),
    (r"decoder\.layers\.(\d+)\.norm_cross\.(.*)", r"transformer.decoder.layers.\1.norms.1.\2"),
    (r"decoder\.layers\.(\d+)\.ffn\.norm\.(.*)", r"transformer.decoder.layers.\1.norms.2.\2"),
    (r"(\w+)\.layers\.(\d+)\.ffn\.linear1\.(.*)", r"transformer.\1.layers.\2.ffns.0.layers.0.0.\3"),
    (r"(\w+)\.layers\.(\d+)\.ffn\.linear2\.(.*)", r"transformer.\1.layers.\2.ffns.0.layers.1.\3"),
    (r"proposals\.output\.(.*)", r"transformer.enc_output.\1"),
    (r"proposals\.norm\.(.*)", r"transformer.enc_output_norm.\1"),
    (r"query_proj\.(.*)", r"transformer.pos_trans.\1"),
    (r"query_norm\.(.*)", r"transformer.pos_trans_norm.\1"),
    (r"class_heads\.(.*)", r"class_embed.\1"),
    (r"box_heads\.(.*)", r"bbox_embed.\1"),
]


def detrex_layout(ours: dict) -> dict:
    out = {}
    for key, value in ours.items():
        for pattern, template in DETREX_NAMES:
            match = re.fullmatch(pattern, key)
            if match:
                key = match.expand(template)
                break
        out[key] = value
        if key.startswith(("class_embed.", "bbox_embed.")):  # also registered on the decoder
            out["transformer.decoder." + key] = value
    return out


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location(
        "_tool_convert_checkpoint", REPO / "tools" / "convert_checkpoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    (root / "tiny_deformable.py").write_text(TINY_DEFORMABLE)
    (root / "tiny_backbone.py").write_text(TINY_BACKBONE)
    (root / "tiny_pair.py").write_text(TINY_PAIR)
    return root


@pytest.fixture(scope="module")
def tiny_deformable(configs):
    from detectron2.config import LazyConfig, instantiate

    model = instantiate(LazyConfig.load(str(configs / "tiny_deformable.py")).model)
    return {
        k: v + torch.rand(v.shape) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }


@pytest.fixture(scope="module")
def torchvision_r18():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        names = torchvision.models.resnet18().state_dict()
    return {k: torch.rand(v.shape).to(v.dtype) for k, v in names.items()}


def run_tool(tool, *argv) -> int:
    return tool.main([str(a) for a in argv])


def test_detrex_deformable_with_config(tool, configs, tiny_deformable, tmp_path, capsys):
    source, output = tmp_path / "detrex.pth", tmp_path / "out" / "converted.pth"
    torch.save({"model": detrex_layout(tiny_deformable), "iteration": 9}, source)
    config = configs / "tiny_deformable.py"
    argv = ["--source", "detrex-deformable-detr", "--input", source, "--output", output]
    assert run_tool(tool, *argv, "--config-file", config) == 0
    printed = capsys.readouterr().out
    assert f"{len(tiny_deformable)} tensors" in printed and f"fits {config}" in printed
    assert "alias of the top-level heads" in printed
    saved = torch.load(output, map_location="cpu", weights_only=True)
    assert set(saved) == {"model"}
    assert set(saved["model"]) == set(tiny_deformable)
    for k, v in tiny_deformable.items():
        assert torch.equal(saved["model"][k], v), k
    assert [p.name for p in output.parent.iterdir()] == ["converted.pth"]  # no temp file left

    # The same weights do not fit a model with other sizes: the overridden key is named.
    assert run_tool(tool, *argv, "--config-file", config, "model.num_queries=7") == 0
    assert run_tool(tool, *argv, "--config-file", config, "model.num_classes=4") == 1
    assert "class_heads.0.weight: [5, 32] vs model [4, 32]" in capsys.readouterr().err


def test_torchvision_resnet_subset_of_model(tool, configs, torchvision_r18, tmp_path, capsys):
    source, output = tmp_path / "resnet18.pth", tmp_path / "r18.pth"
    torch.save(torchvision_r18, source)  # a bare state dict, as torchvision ships it
    argv = ["--source", "torchvision-resnet", "--input", source, "--output", output]
    assert run_tool(tool, *argv, "--config-file", configs / "tiny_backbone.py") == 0
    printed = capsys.readouterr().out
    assert "dropped    2: ImageNet classification head" in printed
    model = torch.load(output, map_location="cpu", weights_only=True)["model"]
    assert all(k.startswith("backbone.") for k in model)
    assert torch.equal(
        model["backbone.res4.1.conv2.norm.running_var"], torchvision_r18["layer3.1.bn2.running_var"]
    )


def test_prefix_puts_the_weights_under_the_student(
    tool, configs, torchvision_r18, tmp_path, capsys
):
    source, output = tmp_path / "resnet18.pth", tmp_path / "r18.pth"
    torch.save(torchvision_r18, source)
    argv = ["--source", "torchvision-resnet", "--input", source, "--output", output]
    pair = ["--config-file", configs / "tiny_pair.py"]
    assert run_tool(tool, *argv, *pair) == 1  # backbone.* fits neither student nor teacher
    assert "keys the model does not have: 'backbone." in capsys.readouterr().err
    assert run_tool(tool, *argv, *pair, "--prefix", "student.") == 0
    model = torch.load(output, map_location="cpu", weights_only=True)["model"]
    assert all(k.startswith("student.backbone.") for k in model)
    assert torch.equal(model["student.backbone.stem.conv1.weight"], torchvision_r18["conv1.weight"])


def test_detectron2_checkpointer_loads_the_output(tool, configs, torchvision_r18, tmp_path):
    """The output works as train.init_checkpoint: Detectron2 loads the backbone and leaves
    the rest of the model as initialised."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import LazyConfig, instantiate

    source, output = tmp_path / "resnet18.pth", tmp_path / "r18.pth"
    torch.save(torchvision_r18, source)
    assert (
        run_tool(tool, "--source", "torchvision-resnet", "--input", source, "--output", output) == 0
    )
    model = instantiate(LazyConfig.load(str(configs / "tiny_backbone.py")).model)
    head = model.head.weight.clone()
    DetectionCheckpointer(model).load(str(output))
    assert torch.equal(model.backbone.stem.conv1.weight, torchvision_r18["conv1.weight"])
    assert torch.equal(model.head.weight, head)


def test_pickled_objects_need_trust(tool, torchvision_r18, tmp_path, capsys):
    # Official DINO files pickle their argparse 'args': allow-listed (detr_efficient.compat),
    # so they load with weights_only=True; other Python objects need --trust.
    source, output = tmp_path / "official.pth", tmp_path / "out.pth"
    argv = ["--source", "torchvision-resnet", "--input", source, "--output", output]
    torch.save({"model": torchvision_r18, "args": argparse.Namespace(lr=1e-4)}, source)
    assert run_tool(tool, *argv) == 0
    output.unlink()
    torch.save({"model": torchvision_r18, "date": datetime.date(2022, 7, 1)}, source)
    assert run_tool(tool, *argv) == 1
    err = capsys.readouterr().err
    assert "rerun with --trust" in err and "weights_only" in err
    assert not output.exists()
    assert run_tool(tool, *argv, "--trust") == 0
    assert output.exists()


def test_mmdet_state_dict_is_unwrapped(tool, torchvision_r18, tmp_path, capsys):
    """mmdetection / mmengine publish ``{"meta": ..., "state_dict": ...}``: found by default;
    an explicit --model-key looks only there."""
    source, output = tmp_path / "mmdet.pth", tmp_path / "out.pth"
    meta = {"mmengine_version": "0.8.4", "epoch": 12, "dataset_meta": {"classes": ("a", "b")}}
    torch.save({"meta": meta, "state_dict": torchvision_r18}, source)
    argv = ["--source", "torchvision-resnet", "--input", source, "--output", output]
    assert run_tool(tool, *argv) == 0
    model = torch.load(output, map_location="cpu", weights_only=True)["model"]
    assert torch.equal(model["backbone.stem.conv1.weight"], torchvision_r18["conv1.weight"])
    assert run_tool(tool, *argv, "--model-key", "model") == 1
    assert "no state dict under 'model'" in capsys.readouterr().err


def test_model_key_and_bad_inputs(tool, torchvision_r18, tmp_path, capsys):
    source, output = tmp_path / "ema.pth", tmp_path / "out.pth"
    torch.save({"ema_model": torchvision_r18, "epoch": torch.tensor(3)}, source)
    argv = ["--source", "torchvision-resnet", "--input", source, "--output", output]
    assert run_tool(tool, *argv) == 1
    assert "--model-key" in capsys.readouterr().err
    assert run_tool(tool, *argv, "--model-key", "ema_model") == 0

    torch.save(
        {"model": {"conv1.weight": torch.zeros(64, 3, 7, 7), "head.w": torch.zeros(2)}}, source
    )
    assert run_tool(tool, *argv) == 1
    assert "'head.w'" in capsys.readouterr().err
    missing = ["--source", "torchvision-resnet", "--input", tmp_path / "nope.pth"]
    assert run_tool(tool, *missing, "--output", output) == 1
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(["--source", "dino-v9", "--input", "a", "--output", "b"])
    with pytest.raises(SystemExit):
        tool.parse_args([*map(str, argv), "model.num_classes=3"])  # overrides need a config
