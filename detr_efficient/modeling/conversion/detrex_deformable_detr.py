"""detrex ``projects/deformable_detr`` checkpoints (two-stage + box refinement, Detectron2
ResNet, 80 classes) → our ``DeformableDETR``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .core import Conversion, Converter
from .deformable_detr_official import map_heads, require_two_stage_box_refine
from .layouts import (
    WB,
    decoder_layer_count,
    detrex_decoder_rules,
    detrex_encoder_rules,
    detrex_neck_rules,
)

__all__ = ["convert"]


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """detrex Deformable DETR ``with_box_refine=True, as_two_stage=True``. Its model-zoo
    files converted from the official ones already hold 80-class heads (the encoder head
    as the official rows 0..79), so the heads map one to one."""
    c = Converter("detrex-deformable-detr", state_dict)
    num_layers = decoder_layer_count(c)
    require_two_stage_box_refine(c, num_layers)
    c.rename(
        [
            (r"(backbone\..*)", r"\1"),
            *detrex_neck_rules(),
            *detrex_encoder_rules("transformer.encoder.layers."),
            *detrex_decoder_rules("transformer.decoder.layers."),
            (r"transformer\.level_embeds", "level_embed"),
            (rf"transformer\.enc_output\.{WB}", r"proposals.output.\1"),
            (rf"transformer\.enc_output_norm\.{WB}", r"proposals.norm.\1"),
            (rf"transformer\.pos_trans\.{WB}", r"query_proj.\1"),
            (rf"transformer\.pos_trans_norm\.{WB}", r"query_norm.\1"),
        ]
    )
    map_heads(c, num_layers)
    return c.finish()
