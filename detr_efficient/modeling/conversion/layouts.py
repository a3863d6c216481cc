"""Rename rules for the layouts several sources share: the transformer layers of the
official code bases (Deformable-DETR, DINO: ``norm1``/``linear1``/...), of detrex
(``attentions``/``ffns``/``norms``) and of mmdetection 3.x (``self_attn``/``ffn``/``norms``),
the necks (``input_proj`` / detrex and mmdet ``ChannelMapper``) and the class-head row
selection."""

from __future__ import annotations

import re

import torch

from .coco import COCO_ID_SLOTS, class_rows
from .core import ConversionError, Converter, Rule

__all__ = [
    "decoder_layer_count",
    "detrex_decoder_rules",
    "detrex_encoder_rules",
    "detrex_neck_rules",
    "drop_head_aliases",
    "mmdet_decoder_rules",
    "mmdet_encoder_rules",
    "mmdet_neck",
    "official_decoder_rules",
    "official_encoder_rules",
    "official_neck",
    "select_rows",
    "take_class_head",
    "take_label_embedding",
]

WB = r"(weight|bias)"
# deformable attention: MSDA, or KDA (no attention_weights; query_proj, optional key_proj)
MSDA = (
    r"(sampling_offsets|attention_weights|value_proj|output_proj|query_proj|key_proj)"
    r"\.(weight|bias)"
)
MHA = r"(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)"


def official_encoder_rules(src: str, dst: str = "encoder.layers.") -> list[Rule]:
    """Official encoder layer: ``self_attn`` (MSDA) → ``norm1`` → ``linear1/2`` → ``norm2``."""
    p = re.escape(src)
    return [
        (rf"{p}(\d+)\.self_attn\.{MSDA}", rf"{dst}\1.self_attn.\2.\3"),
        (rf"{p}(\d+)\.norm1\.{WB}", rf"{dst}\1.norm.\2"),
        (rf"{p}(\d+)\.linear([12])\.{WB}", rf"{dst}\1.ffn.linear\2.\3"),
        (rf"{p}(\d+)\.norm2\.{WB}", rf"{dst}\1.ffn.norm.\2"),
    ]


def official_decoder_rules(src: str, dst: str = "decoder.layers.") -> list[Rule]:
    """Official decoder layer: ``self_attn`` → ``norm2``, ``cross_attn`` → ``norm1``, FFN →
    ``norm3`` (the norms are numbered in declaration order, not execution order)."""
    p = re.escape(src)
    return [
        (rf"{p}(\d+)\.self_attn\.{MHA}", rf"{dst}\1.self_attn.\2"),
        (rf"{p}(\d+)\.norm2\.{WB}", rf"{dst}\1.norm_self.\2"),
        (rf"{p}(\d+)\.cross_attn\.{MSDA}", rf"{dst}\1.cross_attn.\2.\3"),
        (rf"{p}(\d+)\.norm1\.{WB}", rf"{dst}\1.norm_cross.\2"),
        (rf"{p}(\d+)\.linear([12])\.{WB}", rf"{dst}\1.ffn.linear\2.\3"),
        (rf"{p}(\d+)\.norm3\.{WB}", rf"{dst}\1.ffn.norm.\2"),
    ]


def _mmcv_ffn(p: str, out: str, ffn: str) -> list[Rule]:
    """The linears of the mmcv ``FFN`` ``{p}{i}.{ffn}`` → ``{out}ffn.*`` (``out`` holds
    ``\\1``, the layer)."""
    return [
        (rf"{p}(\d+)\.{ffn}\.layers\.0\.0\.{WB}", rf"{out}ffn.linear1.\2"),
        (rf"{p}(\d+)\.{ffn}\.layers\.1\.{WB}", rf"{out}ffn.linear2.\2"),
    ]


def _mmcv_encoder(p: str, out: str, attn: str, ffn: str) -> list[Rule]:
    """mmcv-style encoder layer (MSDA ``attn``, ``norms.0``, FFN ``ffn``, ``norms.1``) →
    ``{out}*`` (``out`` holds ``\\1``, the layer)."""
    return [
        (rf"{p}(\d+)\.{attn}\.{MSDA}", rf"{out}self_attn.\2.\3"),
        (rf"{p}(\d+)\.norms\.0\.{WB}", rf"{out}norm.\2"),
        *_mmcv_ffn(p, out, ffn),
        (rf"{p}(\d+)\.norms\.1\.{WB}", rf"{out}ffn.norm.\2"),
    ]


def _mmcv_decoder(p: str, dst: str, self_attn: str, cross_attn: str, ffn: str) -> list[Rule]:
    """mmcv-style decoder layer (``self_attn`` wrapping ``nn.MultiheadAttention``,
    ``norms.0``, MSDA ``cross_attn``, ``norms.1``, FFN ``ffn``, ``norms.2``)."""
    return [
        (rf"{p}(\d+)\.{self_attn}\.{MHA}", rf"{dst}\1.self_attn.\2"),
        (rf"{p}(\d+)\.norms\.0\.{WB}", rf"{dst}\1.norm_self.\2"),
        (rf"{p}(\d+)\.{cross_attn}\.{MSDA}", rf"{dst}\1.cross_attn.\2.\3"),
        (rf"{p}(\d+)\.norms\.1\.{WB}", rf"{dst}\1.norm_cross.\2"),
        *_mmcv_ffn(p, rf"{dst}\1.", ffn),
        (rf"{p}(\d+)\.norms\.2\.{WB}", rf"{dst}\1.ffn.norm.\2"),
    ]


def detrex_encoder_rules(
    src: str, dst: str = "encoder.layers.", msda: int = 0, inner: str = ""
) -> list[Rule]:
    """detrex ``BaseTransformerLayer`` with order (self_attn, norm, ffn, norm): the MSDA is
    ``attentions.{msda}``; ``inner``: where our ``DeformableEncoderLayer`` sits in layer
    ``{dst}{i}`` (Focus-DETR: ``"layer."``)."""
    return _mmcv_encoder(re.escape(src), rf"{dst}\1.{inner}", rf"attentions\.{msda}", r"ffns\.0")


def detrex_decoder_rules(src: str, dst: str = "decoder.layers.") -> list[Rule]:
    """detrex ``BaseTransformerLayer`` with order (self_attn, norm, cross_attn, norm, ffn,
    norm); its self-attention wraps ``nn.MultiheadAttention`` as ``.attn``."""
    return _mmcv_decoder(re.escape(src), dst, r"attentions\.0\.attn", r"attentions\.1", r"ffns\.0")


def mmdet_encoder_rules(src: str = "encoder.layers.", dst: str = "encoder.layers.") -> list[Rule]:
    """mmdet 3.x ``DeformableDetrTransformerEncoderLayer``: ``self_attn`` (MSDA),
    ``norms.0``, ``ffn`` (mmcv ``FFN``), ``norms.1``."""
    return _mmcv_encoder(re.escape(src), rf"{dst}\1.", "self_attn", "ffn")


def mmdet_decoder_rules(src: str = "decoder.layers.", dst: str = "decoder.layers.") -> list[Rule]:
    """mmdet 3.x ``DeformableDetrTransformerDecoderLayer``: ``self_attn.attn``
    (``nn.MultiheadAttention``), ``norms.0``, ``cross_attn`` (MSDA), ``norms.1``, ``ffn``,
    ``norms.2``."""
    return _mmcv_decoder(re.escape(src), dst, r"self_attn\.attn", "cross_attn", "ffn")


def detrex_neck_rules() -> list[Rule]:
    """detrex ``ChannelMapper`` (``ConvNormAct``: ``.conv``, ``.norm``) → ours (``.0``, ``.1``)."""
    return [
        (rf"neck\.(convs|extra_convs)\.(\d+)\.conv\.{WB}", r"neck.\1.\2.0.\3"),
        (rf"neck\.(convs|extra_convs)\.(\d+)\.norm\.{WB}", r"neck.\1.\2.1.\3"),
    ]


def mmdet_neck(c: Converter) -> None:
    """mmdet ``ChannelMapper`` (mmcv ``ConvModule``: ``.conv``, ``.gn``) → ours (``.0``,
    ``.1``). ``ConvModule`` builds its conv without a bias when a norm follows
    (``bias='auto'``): ours gets a zero bias, which computes the same."""
    c.rename(
        [
            (rf"neck\.(convs|extra_convs)\.(\d+)\.conv\.{WB}", r"neck.\1.\2.0.\3"),
            (rf"neck\.(convs|extra_convs)\.(\d+)\.gn\.{WB}", r"neck.\1.\2.1.\3"),
        ]
    )
    zeroed = []
    for key, weight in c.src.items():
        match = re.fullmatch(r"neck\.(convs|extra_convs)\.(\d+)\.conv\.weight", key)
        if match is None:
            continue
        bias = f"neck.{match[1]}.{match[2]}.0.bias"
        if bias not in c.out:
            c.out[bias] = weight.new_zeros(weight.shape[0])
            zeroed.append(bias)
    if zeroed:
        c.notes.append(
            f"{', '.join(zeroed)}: zeros (the checkpoint's neck convs have no bias: mmcv "
            "ConvModule drops it before a norm)"
        )


def official_neck(c: Converter) -> None:
    """``input_proj.{i}.{0 conv, 1 GroupNorm}``: the 1x1 projections of the backbone maps
    become ``neck.convs``, the 3x3 stride-2 extra levels after them ``neck.extra_convs``."""
    indices = sorted(int(k.split(".")[1]) for k in c.unclaimed(r"input_proj\.\d+\.0\.weight"))
    if indices != list(range(len(indices))):
        raise ConversionError(f"{c.source}: input_proj levels are not 0..n-1: {indices}")
    kernels = [c.src[f"input_proj.{i}.0.weight"].shape[-1] for i in indices]
    num_inputs = kernels.count(1)
    if kernels != [1] * num_inputs + [3] * (len(kernels) - num_inputs):
        raise ConversionError(
            f"{c.source}: expected 1x1 input projections followed by 3x3 extra levels, got "
            f"kernel sizes {kernels}"
        )
    for i in indices:
        dst = f"neck.convs.{i}" if i < num_inputs else f"neck.extra_convs.{i - num_inputs}"
        c.rename([(rf"input_proj\.{i}\.([01])\.{WB}", rf"{dst}.\1.\2")])


def select_rows(rows: torch.Tensor):
    """A transform keeping ``rows`` (first dim) of a tensor."""

    def transform(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.index_select(0, rows).contiguous()

    return transform


def take_class_head(c: Converter, src: str, dst: str, agnostic: bool = False) -> torch.Tensor:
    """Map the linear class head ``src`` → ``dst`` and return the rows kept: the 80 COCO ids
    of a 91-slot head in our class order, all rows otherwise. ``agnostic``: a class-agnostic
    encoder head (Deformable DETR two-stage), whose only trained output is row 0; it keeps
    the first 80 rows so that row 0 stays the objectness logit."""
    weight = c.require(f"{src}.weight", "class head")
    num = weight.shape[0]
    rows = class_rows(num)
    if agnostic:
        rows = torch.arange(len(rows))
    for name in ("weight", "bias"):
        c.take(f"{src}.{name}", f"{dst}.{name}", select_rows(rows), "class head")
    if num == COCO_ID_SLOTS and agnostic:
        c.notes.append(f"{src}: class-agnostic encoder head, rows 0..79 kept (row 0: objectness)")
    elif num == COCO_ID_SLOTS:
        c.notes.append(f"{src}: 91 COCO-id outputs → the 80 classes in Detectron2's order")
    return rows


def take_label_embedding(c: Converter, src: str, dst: str, rows: torch.Tensor) -> None:
    """The denoising label embedding ``src`` ``[L, C]`` → ``dst`` ``[len(rows), C]``: the
    ``rows`` of the class head (``take_class_head``), the only ones a label indexes."""
    labels = c.require(src, "denoising label embedding")
    if labels.shape[0] <= int(rows.max()):
        raise ConversionError(
            f"{c.source}: {src} has {labels.shape[0]} rows, too few for the "
            f"{int(rows.max()) + 1}-output class head"
        )
    c.take(src, dst, select_rows(rows))
    if labels.shape[0] != len(rows):
        c.notes.append(
            f"{src}: {labels.shape[0]} rows → the {len(rows)} class rows (the others are "
            "never indexed by a label)"
        )


def drop_head_aliases(c: Converter) -> None:
    """Drop ``transformer.decoder.class_embed.i`` / ``bbox_embed.i``: the heads the official
    and detrex models also register on their decoder, checked equal to ``class_embed.i`` /
    ``bbox_embed.i``."""
    reason = "alias of the top-level heads registered on transformer.decoder"
    c.drop_copies(rf"transformer\.decoder\.class_embed\.(\d+)\.{WB}", r"class_embed.\1.\2", reason)
    c.drop_copies(
        rf"transformer\.decoder\.bbox_embed\.(\d+)\.layers\.(\d+)\.{WB}",
        r"bbox_embed.\1.layers.\2.\3",
        reason,
    )


def decoder_layer_count(c: Converter, prefix: str = "transformer.decoder.layers.") -> int:
    """Number of ``{prefix}{i}`` decoder layers in the checkpoint (at least 1)."""
    keys = c.unclaimed(re.escape(prefix) + r"\d+\..*")
    ids = {k[len(prefix) :].split(".")[0] for k in keys}
    if not ids:
        raise ConversionError(f"{c.source}: no {prefix}* in the checkpoint")
    return len(ids)
