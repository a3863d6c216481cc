"""Focus-DETR checkpoints (the official code: detrex ``projects/focus_detr``; Detectron2
ResNet, 80 classes) → our ``FocusDETR``."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .core import Conversion, Converter
from .detrex_dino import map_dino
from .layouts import MHA, WB, detrex_encoder_rules

__all__ = ["convert", "flip_alpha"]

ENCODER = "transformer.encoder.layers."
MCSP_ALIAS = (
    "alias of class_embed.{n} (the encoder class head), which scores the dual attention's "
    "tokens in every encoder layer"
)
MCSP_MISMATCH = (
    "the official model scores the dual attention with class_embed[num_encoder_layers]; "
    "our FocusDETR uses the encoder class head class_embed.{n} (num_decoder_layers), so "
    "the two must be the same module (equal encoder and decoder depths)"
)


def flip_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Official ``transformer.alpha`` ``[L-1]`` → our ``selector.alpha`` ``[L-1]``. The
    official selector scores the levels coarsest first and modulates the i-th finer level
    it reaches (level ``L-1-i``) with ``alpha[i-1]``: ``alpha[0]`` level ``L-2`` ... ``alpha
    [L-2]`` level 0. Ours modulates level ``l`` with ``alpha[l]``: the reversed vector."""
    return alpha.flip(0)


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """detrex DINO's layout (see ``detrex_dino.map_dino``, heads shared or per layer) plus:

    - encoder layer ``i`` (operations OESM, MSDA, norm, FFN, norm): ``attentions.0.attn``
      (dual attention, ``nn.MultiheadAttention``) and ``norm2`` after it →
      ``encoder.layers.i.dual_attention.{attn,norm}``; ``attentions.1`` (MSDA), ``norms.0``,
      ``ffns.0``, ``norms.1`` → ``encoder.layers.i.layer.*``;
    - ``transformer.enc_mask_predictor.layer1.{0,1}`` / ``layer2.{0,2,4}`` →
      ``selector.scorer.embed.{0,1}`` / ``head.{0,2,4}``;
    - ``transformer.alpha`` → ``selector.alpha`` reversed (:func:`flip_alpha`);
    - ``enhance_MCSP_layerlist.i`` / ``transformer.encoder.enhance_MCSP.i``: dropped after
      checking that they equal the encoder class head ``class_embed.{num_decoder_layers}``.
    """
    c = Converter("focus-detr", state_dict)
    p = re.escape(ENCODER)
    c.rename(
        [
            (rf"{p}(\d+)\.attentions\.0\.attn\.{MHA}", r"encoder.layers.\1.dual_attention.attn.\2"),
            (rf"{p}(\d+)\.norm2\.{WB}", r"encoder.layers.\1.dual_attention.norm.\2"),
            *detrex_encoder_rules(ENCODER, msda=1, inner="layer."),
            (
                rf"transformer\.enc_mask_predictor\.layer1\.([01])\.{WB}",
                r"selector.scorer.embed.\1.\2",
            ),
            (
                rf"transformer\.enc_mask_predictor\.layer2\.([024])\.{WB}",
                r"selector.scorer.head.\1.\2",
            ),
        ]
    )
    c.take("transformer.alpha", "selector.alpha", flip_alpha, "top-down modulation weights")
    n = map_dino(c)
    c.drop_copies(
        rf"(?:enhance_MCSP_layerlist|transformer\.encoder\.enhance_MCSP)\.\d+\.{WB}",
        rf"class_embed.{n}.\1",
        MCSP_ALIAS.format(n=n),
        MCSP_MISMATCH.format(n=n),
    )
    c.notes.append(
        "transformer.alpha reversed into selector.alpha (official: coarsest-first order)"
    )
    c.notes.append(
        "the official code's encoder: set model.encoder.score_product='logits' and "
        "model.encoder.value_source='original' (and for training model.scale_ranges="
        "OFFICIAL_SCALE_RANGES)"
    )
    return c.finish()
