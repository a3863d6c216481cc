"""IDEA-Research/Lite-DETR checkpoints (``r50_s3ex3_50.4.pth`` and the like: Lite-DINO on the
official DINO code) → our ``DINO`` with Lite DETR's encoder and KDA
(``configs/lite_detr/models/lite_dino_r50.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .core import Conversion, Converter
from .dino_official import map_official_dino
from .layouts import WB

__all__ = ["convert"]

ENCODER = re.escape("transformer.encoder.layers.")


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """The official DINO layout (``dino_official``) plus:

    - the attention modules are KDA (``query_proj``, no ``attention_weights``; the released
      config's ``proj_key=False`` keeps no ``key_proj``, which ``proj_key=True`` checkpoints
      would add): same names as ours;
    - the full encoder layers (``small_expand``) hold the low-level tokens' FFN
      ``linear12`` / ``linear22`` / ``norm22`` → ``encoder.layers.i.low_ffn.{linear1,
      linear2,norm}``.

    The layer order (which of ``transformer.encoder.layers`` are full layers) is checked
    against the model when it is given, through the keys the full layers alone have.
    """
    c = Converter("lite-detr", state_dict)
    c.rename(
        [
            (rf"{ENCODER}(\d+)\.linear([12])2\.{WB}", r"encoder.layers.\1.low_ffn.linear\2.\3"),
            (rf"{ENCODER}(\d+)\.norm22\.{WB}", r"encoder.layers.\1.low_ffn.norm.\2"),
        ]
    )
    map_official_dino(c)
    c.notes.append(
        "the official Lite DETR: build the model with the H?L?-(A+B)xN variant the checkpoint "
        "was trained with (r50_s3ex3: H3L1-(2+1)x3, s3ex1: H3L1-(6+1)x1, s2ex3: H2L2-(2+1)x3)"
    )
    return c.finish()
