"""IDEA-Research/DINO checkpoints (``checkpoint0011_4scale.pth`` and the like, ResNet
backbones) → our ``DINO``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .core import Conversion, Converter
from .layouts import (
    WB,
    decoder_layer_count,
    drop_head_aliases,
    official_decoder_rules,
    official_encoder_rules,
    official_neck,
    take_class_head,
    take_label_embedding,
)
from .torchvision_resnet import BATCH_COUNTER, resnet_rules

__all__ = ["convert", "drop_shared_decoder_heads", "map_official_dino"]

PER_LAYER_HEADS = (
    "the checkpoint has one {} head per decoder layer, but our DINO shares one across the "
    "layers (detr_efficient/modeling/dino/dino.py: DINO.class_head / DINO.box_head), so it "
    "cannot be loaded faithfully"
)


def drop_shared_decoder_heads(c: Converter, num_layers: int) -> None:
    """``class_embed.i`` / ``bbox_embed.i`` for decoder layers 1..n-1 must be copies of layer
    0's (which the caller maps to ``class_head`` / ``box_head``): drop them after checking."""
    others = "|".join(str(i) for i in range(1, num_layers))
    if not others:
        return
    reason = "decoder head shared by all layers, saved once per layer"
    c.drop_copies(
        rf"class_embed\.(?:{others})\.{WB}",
        r"class_embed.0.\1",
        reason,
        PER_LAYER_HEADS.format("class"),
    )
    c.drop_copies(
        rf"bbox_embed\.(?:{others})\.layers\.(\d+)\.{WB}",
        r"bbox_embed.0.layers.\1.\2",
        reason,
        PER_LAYER_HEADS.format("box"),
    )


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """Official DINO (``dec_pred_*_embed_share=True``, two-stage 'standard', ResNet): the
    91-slot COCO-id class heads and the 92-row denoising label table are reduced to the 80
    Detectron2 classes. Run the model with ``position_embedding.temperature=20`` and
    ``offset=0.0`` (the official ``pe_temperatureH/W=20``, no offset)."""
    c = Converter("dino-official", state_dict)
    map_official_dino(c)
    return c.finish()


def map_official_dino(c: Converter) -> None:
    """Claim the keys of the official DINO layout (see ``convert``) in ``c``."""
    num_layers = decoder_layer_count(c)
    c.rename(resnet_rules("backbone.0.body."))
    c.drop(r"backbone\.0\.body\..*\.num_batches_tracked", BATCH_COUNTER)
    official_neck(c)
    c.rename(
        [
            *official_encoder_rules("transformer.encoder.layers."),
            *official_decoder_rules("transformer.decoder.layers."),
            (r"transformer\.level_embed", "level_embed"),
            (r"transformer\.tgt_embed\.weight", "query_content.weight"),
            (rf"transformer\.enc_output\.{WB}", r"proposals.output.\1"),
            (rf"transformer\.enc_output_norm\.{WB}", r"proposals.norm.\1"),
            (
                rf"transformer\.enc_out_bbox_embed\.layers\.(\d+)\.{WB}",
                r"enc_box_head.layers.\1.\2",
            ),
            (
                rf"transformer\.decoder\.ref_point_head\.layers\.(\d+)\.{WB}",
                r"decoder.ref_point_head.layers.\1.\2",
            ),
            (rf"transformer\.decoder\.norm\.{WB}", r"decoder.norm.\1"),
            (rf"bbox_embed\.0\.layers\.(\d+)\.{WB}", r"box_head.layers.\1.\2"),
        ]
    )
    rows = take_class_head(c, "class_embed.0", "class_head")
    take_class_head(c, "transformer.enc_out_class_embed", "enc_class_head")
    take_label_embedding(c, "label_enc.weight", "denoising.label_embed.weight", rows)
    drop_shared_decoder_heads(c, num_layers)
    drop_head_aliases(c)
    c.notes.append(
        "official DINO's position encoding differs from our default: set "
        "model.position_embedding.temperature=20 and model.position_embedding.offset=0.0"
    )
