"""detrex ``projects/dino`` checkpoints (Detectron2 ResNet, 80 classes) → our ``DINO``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .core import Conversion, Converter
from .dino_official import drop_shared_decoder_heads
from .layouts import (
    WB,
    decoder_layer_count,
    detrex_decoder_rules,
    detrex_encoder_rules,
    detrex_neck_rules,
    drop_head_aliases,
    take_class_head,
)

__all__ = ["convert", "map_dino"]


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """detrex DINO: see :func:`map_dino`; its encoder layers are detrex
    ``BaseTransformerLayer`` (MSDA, norm, FFN, norm)."""
    c = Converter("detrex-dino", state_dict)
    c.rename(detrex_encoder_rules("transformer.encoder.layers."))
    map_dino(c)
    return c.finish()


def map_dino(c: Converter) -> int:
    """Map everything of a detrex DINO-like model but its encoder layers; returns the number
    of decoder layers. detrex DINO keeps ``num_layers + 1`` class / box heads: one per
    decoder layer and the last for the encoder proposals. The encoder's become
    ``enc_class_head`` / ``enc_box_head``. Decoder heads that are all equal become the
    shared ``class_head`` / ``box_head``; otherwise (detrex trains them separately) they
    become ``class_heads.i`` / ``box_heads.i`` of a DINO built with
    ``model.share_heads=False``."""
    num_layers = decoder_layer_count(c)
    c.rename(
        [
            (r"(backbone\..*)", r"\1"),
            *detrex_neck_rules(),
            *detrex_decoder_rules("transformer.decoder.layers."),
            (r"transformer\.level_embeds", "level_embed"),
            (r"transformer\.tgt_embed\.weight", "query_content.weight"),
            (rf"transformer\.enc_output\.{WB}", r"proposals.output.\1"),
            (rf"transformer\.enc_output_norm\.{WB}", r"proposals.norm.\1"),
            (
                rf"transformer\.decoder\.ref_point_head\.layers\.(\d+)\.{WB}",
                r"decoder.ref_point_head.layers.\1.\2",
            ),
            (rf"transformer\.decoder\.norm\.{WB}", r"decoder.norm.\1"),
            (
                rf"bbox_embed\.{num_layers}\.layers\.(\d+)\.{WB}",
                r"enc_box_head.layers.\1.\2",
            ),
            (r"label_enc\.weight", "denoising.label_embed.weight"),
        ]
    )
    take_class_head(c, f"class_embed.{num_layers}", "enc_class_head")
    if _heads_shared(c.src, num_layers):
        c.rename([(rf"bbox_embed\.0\.layers\.(\d+)\.{WB}", r"box_head.layers.\1.\2")])
        take_class_head(c, "class_embed.0", "class_head")
        drop_shared_decoder_heads(c, num_layers)
    else:
        c.rename([(rf"bbox_embed\.(\d+)\.layers\.(\d+)\.{WB}", r"box_heads.\1.layers.\2.\3")])
        for layer in range(num_layers):
            take_class_head(c, f"class_embed.{layer}", f"class_heads.{layer}")
    drop_head_aliases(c)
    return num_layers


def _heads_shared(state_dict: Mapping[str, torch.Tensor], num_layers: int) -> bool:
    """Whether every decoder layer's class and box head equals layer 0's."""
    for key, value in state_dict.items():
        for prefix in ("class_embed.", "bbox_embed."):
            if key.startswith(prefix):
                layer, _, rest = key[len(prefix) :].partition(".")
                other = state_dict[f"{prefix}0.{rest}"] if layer.isdigit() else None
                if (
                    other is not None
                    and 0 < int(layer) < num_layers
                    and not torch.equal(value, other)
                ):
                    return False
    return True
