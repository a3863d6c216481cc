"""Focus-DETR's encoder under DDQ-DETR's queries: the two methods change disjoint halves of
DINO (Focus-DETR the encoder, DDQ-DETR query selection and the decoder), so the detector is
their two classes, nothing else."""

from __future__ import annotations

from detectron2.modeling import META_ARCH_REGISTRY

from ..ddq import DDQDETR
from ..focus_detr import FocusDETR

__all__ = ["FocusDDQDETR"]


@META_ARCH_REGISTRY.register()
class FocusDDQDETR(FocusDETR, DDQDETR):
    """Focus-DETR's foreground selector, cascade and dual attention encode the tokens
    (``FocusDETR.forward``, ``loss_foreground``); DDQ-DETR's distinct and dense queries decode
    them (``DDQDETR.decode``, ``loss_dense_*``). Takes the arguments of both."""
