"""torchvision ResNet names → Detectron2 ResNet names (``stem``, ``res2``..``res5``,
``conv{k}.norm``, ``shortcut``). Used for ImageNet classification weights and for the
torchvision backbones inside the official DINO / Deformable DETR checkpoints."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .core import Conversion, Converter, Rule

__all__ = ["convert", "resnet_rules"]

_BN = r"(weight|bias|running_mean|running_var)"


def resnet_rules(src: str = "", dst: str = "backbone.") -> list[Rule]:
    """Rules renaming a torchvision ResNet under prefix ``src`` to Detectron2's under ``dst``.
    ``layer{i}`` becomes ``res{i+1}``; ``bn{k}`` the ``conv{k}.norm`` of the same block;
    ``downsample.0/1`` the ``shortcut`` conv and its norm."""
    p = re.escape(src)

    def stage(m: re.Match) -> str:
        return f"{dst}res{int(m[1]) + 1}.{m[2]}."

    return [
        (rf"{p}conv1\.weight", f"{dst}stem.conv1.weight"),
        (rf"{p}bn1\.{_BN}", rf"{dst}stem.conv1.norm.\1"),
        (rf"{p}layer([1-4])\.(\d+)\.conv(\d)\.weight", lambda m: f"{stage(m)}conv{m[3]}.weight"),
        (rf"{p}layer([1-4])\.(\d+)\.bn(\d)\.{_BN}", lambda m: f"{stage(m)}conv{m[3]}.norm.{m[4]}"),
        (rf"{p}layer([1-4])\.(\d+)\.downsample\.0\.weight", lambda m: f"{stage(m)}shortcut.weight"),
        (
            rf"{p}layer([1-4])\.(\d+)\.downsample\.1\.{_BN}",
            lambda m: f"{stage(m)}shortcut.norm.{m[3]}",
        ),
    ]


BATCH_COUNTER = "BatchNorm step counter (Detectron2's FrozenBN has none)"


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """ImageNet classification weights of a torchvision ResNet (``conv1.weight``,
    ``layer1.0.bn1.running_mean``, ..., ``fc.*``) → our ``backbone.*`` keys, for
    ``train.init_checkpoint``. Build the backbone with ``stride_in_1x1=False`` (stride in
    the 3x3 conv, torchvision's layout) and feed RGB images normalised like torchvision."""
    c = Converter("torchvision-resnet", state_dict)
    c.rename(resnet_rules())
    c.drop(r"fc\.(weight|bias)", "ImageNet classification head")
    c.drop(r".*\.num_batches_tracked", BATCH_COUNTER)
    return c.finish()
