"""fundamentalvision/Deformable-DETR checkpoints (two-stage + iterative box refinement,
ResNet) → our ``DeformableDETR``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .core import Conversion, ConversionError, Converter
from .layouts import (
    WB,
    decoder_layer_count,
    drop_head_aliases,
    official_decoder_rules,
    official_encoder_rules,
    official_neck,
    take_class_head,
)
from .torchvision_resnet import BATCH_COUNTER, resnet_rules

__all__ = ["convert", "map_heads", "require_two_stage_box_refine"]


def require_two_stage_box_refine(c: Converter, num_layers: int) -> None:
    """Our DeformableDETR is two-stage with iterative box refinement: the checkpoint must
    hold the proposal projection (``transformer.pos_trans``) and the refining heads on its
    decoder (``transformer.decoder.bbox_embed``), one head pair per layer plus the encoder's."""
    if "transformer.pos_trans.weight" not in c.src:
        raise ConversionError(
            f"{c.source}: no transformer.pos_trans: a single-stage checkpoint (learned "
            "query_embed); only the two-stage + box-refinement variant maps to our DeformableDETR"
        )
    if not c.unclaimed(r"transformer\.decoder\.bbox_embed\..*"):
        raise ConversionError(
            f"{c.source}: no transformer.decoder.bbox_embed: trained without iterative box "
            "refinement, but our DeformableDETR always refines the boxes layer by layer"
        )
    heads = {k.split(".")[1] for k in c.unclaimed(r"class_embed\.\d+\..*")}
    if heads != {str(i) for i in range(num_layers + 1)}:
        raise ConversionError(
            f"{c.source}: expected class_embed.0..{num_layers} ({num_layers} decoder layers + "
            f"the encoder's), got {sorted(heads, key=int)}"
        )


def map_heads(c: Converter, num_layers: int) -> None:
    """``class_embed.i`` / ``bbox_embed.i`` → ``class_heads.i`` / ``box_heads.i``; the last
    (encoder proposals) class head is class-agnostic."""
    c.rename([(rf"bbox_embed\.(\d+)\.layers\.(\d+)\.{WB}", r"box_heads.\1.layers.\2.\3")])
    for i in range(num_layers + 1):
        take_class_head(c, f"class_embed.{i}", f"class_heads.{i}", agnostic=i == num_layers)
    drop_head_aliases(c)


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """Official Deformable DETR ``--with_box_refine --two_stage``: the 91-slot COCO-id
    decoder class heads are reduced to the 80 Detectron2 classes; the encoder's
    class-agnostic head keeps rows 0..79 (row 0, the objectness logit, stays row 0)."""
    c = Converter("deformable-detr-official", state_dict)
    num_layers = decoder_layer_count(c)
    require_two_stage_box_refine(c, num_layers)
    c.rename(resnet_rules("backbone.0.body."))
    c.drop(r"backbone\.0\.body\..*\.num_batches_tracked", BATCH_COUNTER)
    official_neck(c)
    c.rename(
        [
            *official_encoder_rules("transformer.encoder.layers."),
            *official_decoder_rules("transformer.decoder.layers."),
            (r"transformer\.level_embed", "level_embed"),
            (rf"transformer\.enc_output\.{WB}", r"proposals.output.\1"),
            (rf"transformer\.enc_output_norm\.{WB}", r"proposals.norm.\1"),
            (rf"transformer\.pos_trans\.{WB}", r"query_proj.\1"),
            (rf"transformer\.pos_trans_norm\.{WB}", r"query_norm.\1"),
        ]
    )
    map_heads(c, num_layers)
    return c.finish()
