"""mmdetection 3.x DDQ-DETR checkpoints → our ``DDQDETR`` as ``configs/ddq/models/ddq_detr_r50.py``
builds it (mmdet's per-layer heads and position encoding). Both published 4-scale R50 12-epoch
models share the layout: mmdet's
``ddq-detr-4scale_r50_8xb2-12e_coco_20230809_170711-42528127.pth`` (config
``configs/ddq/ddq-detr-4scale_r50_8xb2-12e_coco.py``) and the DDQ authors' (jshilong/DDQ,
branch ``ddq_detr``, the same code on mmdet 3.0.0rc6). ResNet backbone, 80 contiguous
classes."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .core import Conversion, ConversionError, Converter
from .layouts import (
    WB,
    decoder_layer_count,
    mmdet_decoder_rules,
    mmdet_encoder_rules,
    mmdet_neck,
    take_class_head,
    take_label_embedding,
)
from .torchvision_resnet import BATCH_COUNTER, resnet_rules

__all__ = ["convert"]

HEAD = "bbox_head."
DECODER_ALIAS = (
    "alias of bbox_head.aux_reg_branches: mmdet's DDQDETR.pre_decoder registers them on the "
    "decoder during training"
)


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """mmdet ``DDQDETR`` (``DINO`` + ``DDQDETRHead``, with ``n`` decoder layers) → ours:

    - ``backbone.*`` (mmdet ``ResNet``, torchvision names) → Detectron2 names;
      ``num_batches_tracked`` dropped;
    - ``neck.{convs,extra_convs}.i.{conv,gn}`` → ``neck.*.i.{0,1}`` (zero conv biases, see
      ``layouts.mmdet_neck``);
    - ``encoder.layers`` / ``decoder.layers`` (``self_attn``, ``cross_attn``, ``ffn``,
      ``norms``) → ours; ``decoder.ref_point_head``, ``decoder.norm``, ``level_embed``,
      ``query_map``: same names; ``memory_trans_{fc,norm}`` → ``proposals.{output,norm}``;
    - ``dn_query_generator.label_embedding`` ``[K, C]`` → ``denoising.label_embed``;
    - ``bbox_head.cls_branches.i`` ``[K, C]`` / ``reg_branches.i.{0,2,4}`` (``[C, C]``,
      ``[C, C]``, ``[4, C]``), ``n + 2`` of each: ``i < n`` → ``class_heads.i`` /
      ``box_heads.i.layers.{0,1,2}``, ``n`` → ``enc_class_head`` / ``enc_box_head``, ``n + 1``
      → ``dense_enc_class_head`` / ``dense_enc_box_head``;
    - ``bbox_head.aux_cls_branches.i`` / ``aux_reg_branches.i`` (``n`` of each) →
      ``dense_class_heads.i`` / ``dense_box_heads.i``;
    - class heads and label embedding keep ``class_rows(K)``: mmdet's ``K = 80`` contiguous
      labels are already Detectron2's classes in order, so all rows;
    - ``decoder.aux_reg_branches.i``: dropped after checking that it equals
      ``bbox_head.aux_reg_branches.i`` (the same modules, saved twice).
    """
    c = Converter("ddq-detr-mmdet", state_dict)
    layers = decoder_layer_count(c, "decoder.layers.")
    check_branch_counts(c, layers)
    c.rename(resnet_rules("backbone."))
    c.drop(r"backbone\..*\.num_batches_tracked", BATCH_COUNTER)
    mmdet_neck(c)
    c.rename(
        [
            *mmdet_encoder_rules(),
            *mmdet_decoder_rules(),
            (
                rf"decoder\.ref_point_head\.layers\.(\d+)\.{WB}",
                r"decoder.ref_point_head.layers.\1.\2",
            ),
            (rf"decoder\.norm\.{WB}", r"decoder.norm.\1"),
            (r"level_embed", "level_embed"),
            (rf"memory_trans_fc\.{WB}", r"proposals.output.\1"),
            (rf"memory_trans_norm\.{WB}", r"proposals.norm.\1"),
            (rf"query_map\.{WB}", r"query_map.\1"),
        ]
    )
    encoder_pair, *other_pairs = head_pairs(layers)
    rows = map_head_pair(c, *encoder_pair)
    for src, dst in other_pairs:
        map_head_pair(c, src, dst)
    take_label_embedding(
        c, "dn_query_generator.label_embedding.weight", "denoising.label_embed.weight", rows
    )
    c.drop_copies(
        rf"decoder\.aux_reg_branches\.(\d+)\.([024])\.{WB}",
        rf"{HEAD}aux_reg_branches.\1.\2.\3",
        DECODER_ALIAS,
    )
    c.notes.extend(NOTES)
    return c.finish()


def branch_count(c: Converter, name: str) -> int:
    """Number of ``bbox_head.{name}.{i}`` modules in the checkpoint."""
    prefix = f"{HEAD}{name}."
    return len({k[len(prefix) :].split(".")[0] for k in c.src if k.startswith(prefix)})


def check_branch_counts(c: Converter, layers: int) -> None:
    """DDQDETRHead with ``layers`` decoder layers: ``layers + 2`` ``cls_branches`` /
    ``reg_branches`` (decoder, encoder, dense encoder) and ``layers`` ``aux_*`` ones."""
    expected = {"cls_branches": layers + 2, "reg_branches": layers + 2}
    expected |= {"aux_cls_branches": layers, "aux_reg_branches": layers}
    found = {name: branch_count(c, name) for name in expected}
    if found != expected:
        raise ConversionError(
            f"{c.source}: with {layers} decoder layers a DDQ-DETR head has bbox_head.* "
            f"branches {expected}, the checkpoint {found} (a DINO or Deformable DETR "
            "checkpoint?)"
        )


def map_head_pair(c: Converter, src: tuple[str, str], dst: tuple[str, str]) -> torch.Tensor:
    """Class head ``src[0]`` (``Linear``) → ``dst[0]`` and box head ``src[1]``
    (``Sequential`` of Linear, ReLU, Linear, ReLU, Linear) → the ``MLP`` ``dst[1]``; returns
    the class rows kept."""
    p, box = re.escape(src[1]), dst[1]
    c.rename([(rf"{p}\.([024])\.{WB}", lambda m: f"{box}.layers.{int(m[1]) // 2}.{m[2]}")])
    return take_class_head(c, src[0], dst[0])


def head_pairs(layers: int) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(source class head, box head) → (ours) for every head, the encoder's first (see
    ``convert``)."""
    cls, reg, aux = f"{HEAD}cls_branches", f"{HEAD}reg_branches", f"{HEAD}aux_"
    pairs = [
        ((f"{cls}.{layers}", f"{reg}.{layers}"), ("enc_class_head", "enc_box_head")),
        (
            (f"{cls}.{layers + 1}", f"{reg}.{layers + 1}"),
            ("dense_enc_class_head", "dense_enc_box_head"),
        ),
    ]
    for i in range(layers):
        pairs.append(((f"{cls}.{i}", f"{reg}.{i}"), (f"class_heads.{i}", f"box_heads.{i}")))
        dense = (f"dense_class_heads.{i}", f"dense_box_heads.{i}")
        pairs.append(((f"{aux}cls_branches.{i}", f"{aux}reg_branches.{i}"), dense))
    return pairs


NOTES = (
    "mmdet's DDQ-DETR has one class / box head per decoder layer (share_heads=False) and "
    "position encodings with temperature=20, offset=0.0, as configs/ddq/models/ddq_detr_r50.py",
    "inference differs slightly from mmdet's by design (detr_efficient/modeling/ddq/"
    "ddq_detr.py): the NMS between decoder layers scores the normalised hidden states (mmdet: "
    "the un-normalised ones, which no head sees) and reads the distinct set per query (mmdet: "
    "from row 0 of the attention mask)",
)
