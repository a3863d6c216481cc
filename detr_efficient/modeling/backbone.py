"""Backbone side of the detectors: Detectron2 ResNets (standard or slim, for CPU-sized
experiments) and the channel mapper that turns their stages into ``num_outs`` maps of one
width, adding stride-2 levels on top (Deformable DETR's stride-64 level)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet
from torch import nn

__all__ = ["ChannelMapper", "build_resnet", "build_slim_resnet"]


def build_resnet(
    depth: int = 50,
    out_features: Sequence[str] = ("res3", "res4", "res5"),
    norm: str = "FrozenBN",
    freeze_at: int = 1,
    stride_in_1x1: bool = False,
) -> ResNet:
    """Detectron2's ResNet-{18, 34, 50, 101, 152}. ``freeze_at`` 0: nothing frozen; 1: the
    stem; 2: stem and res2 (and so on). ``stride_in_1x1=False`` is the torchvision layout
    (use True for MSRA/Caffe2 weights)."""
    block = BottleneckBlock if depth >= 50 else BasicBlock
    kwargs = {"stride_in_1x1": stride_in_1x1} if depth >= 50 else {}
    stages = ResNet.make_default_stages(depth, block_class=block, norm=norm, **kwargs)
    stem = BasicStem(in_channels=3, out_channels=64, norm=norm)
    return ResNet(stem, stages, out_features=list(out_features), freeze_at=freeze_at)


def build_slim_resnet(
    widths: Sequence[int] = (32, 64, 128, 256),
    blocks: Sequence[int] = (1, 1, 1, 1),
    out_features: Sequence[str] = ("res3", "res4", "res5"),
    norm: str = "BN",
) -> ResNet:
    """A narrow ResNet of basic blocks (stem width ``widths[0]``; stages res2..res5 at
    strides 4..32), trained from scratch: the CPU-friendly backbone of the shapes configs."""
    if len(widths) != 4 or len(blocks) != 4:
        raise ValueError(
            f"build_slim_resnet: need 4 widths and 4 block counts, got {widths}, {blocks}"
        )
    stem = BasicStem(in_channels=3, out_channels=widths[0], norm=norm)
    stages, in_channels = [], widths[0]
    for index, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        first_stride = 1 if index == 0 else 2
        stages.append(
            ResNet.make_stage(
                BasicBlock,
                count,
                stride_per_block=[first_stride] + [1] * (count - 1),
                in_channels=in_channels,
                out_channels=width,
                norm=norm,
            )
        )
        in_channels = width
    return ResNet(stem, stages, out_features=list(out_features), freeze_at=0)


def _conv_gn(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2),
        nn.GroupNorm(groups, out_channels),
    )


class ChannelMapper(nn.Module):
    """Backbone features ``{name: [B, C_name, H, W]}`` → ``num_outs`` maps ``[B, C, H_l,
    W_l]``: a 1x1 conv + GroupNorm per input feature (``in_channels`` gives their widths),
    then 3x3 stride-2 conv + GroupNorm levels, the first on the last raw input feature and
    the rest on the previous output."""

    def __init__(
        self,
        in_channels: Sequence[int] = (512, 1024, 2048),
        in_features: Sequence[str] = ("res3", "res4", "res5"),
        out_channels: int = 256,
        num_outs: int = 4,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(in_features):
            raise ValueError(
                f"ChannelMapper: {len(in_channels)} in_channels for {len(in_features)} "
                f"in_features {list(in_features)}"
            )
        if num_outs < len(in_features):
            raise ValueError(
                f"ChannelMapper: num_outs ({num_outs}) < number of in_features ({len(in_features)})"
            )
        self.in_features = list(in_features)
        channels = list(in_channels)
        self.convs = nn.ModuleList(_conv_gn(c, out_channels, 1, 1, num_groups) for c in channels)
        extra_inputs = [channels[-1]] + [out_channels] * (num_outs - len(channels) - 1)
        self.extra_convs = nn.ModuleList(
            _conv_gn(c, out_channels, 3, 2, num_groups)
            for c in extra_inputs[: num_outs - len(channels)]
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        missing = [name for name in self.in_features if name not in features]
        if missing:
            raise ValueError(
                f"ChannelMapper: in_features {missing} not among the backbone outputs "
                f"{sorted(features)}"
            )
        inputs = [features[name] for name in self.in_features]
        outs = [conv(x) for conv, x in zip(self.convs, inputs, strict=True)]
        previous = inputs[-1]
        for conv in self.extra_convs:
            previous = conv(previous)
            outs.append(previous)
        return outs
