"""Checkpoint conversion: public DETR-family weights and ImageNet ResNets → our state dicts.

``convert(state_dict, source, reference=model)`` maps every source key to ours or drops it
for a stated reason (anything unexpected raises ``ConversionError`` naming the key) and,
given our model (or its state dict), checks keys and shapes. Sources: see ``SOURCES``.
Detectron2 ``.pkl`` ImageNet weights (MSRA / torchvision-converted) need no conversion:
Detectron2's ``DetectionCheckpointer`` loads them by name matching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from . import (
    ddq_detr_mmdet,
    deformable_detr_official,
    detr_distill_student,
    detrex_deformable_detr,
    detrex_dino,
    detrex_focus_detr,
    dino_official,
    lite_detr_official,
    torchvision_resnet,
)
from .coco import COCO_CATEGORY_IDS, class_rows
from .core import Conversion, ConversionError, check_against

__all__ = [
    "COCO_CATEGORY_IDS",
    "PARTIAL_SOURCES",
    "SOURCES",
    "Conversion",
    "ConversionError",
    "check_against",
    "class_rows",
    "convert",
    "convert_with_report",
]

SOURCES: dict[str, Callable[[Mapping[str, torch.Tensor]], Conversion]] = {
    "dino-official": dino_official.convert,
    "detrex-dino": detrex_dino.convert,
    "deformable-detr-official": deformable_detr_official.convert,
    "detrex-deformable-detr": detrex_deformable_detr.convert,
    "focus-detr": detrex_focus_detr.convert,
    "lite-detr": lite_detr_official.convert,
    "ddq-detr-mmdet": ddq_detr_mmdet.convert,
    "detr-distill-student": detr_distill_student.convert,
    "torchvision-resnet": torchvision_resnet.convert,
}
# Sources giving only part of a model (the backbone): checked as a subset of its keys.
PARTIAL_SOURCES = frozenset({"torchvision-resnet"})


def convert_with_report(
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    reference: nn.Module | Mapping[str, torch.Tensor] | None = None,
) -> Conversion:
    """Convert and return the full record (mapped / dropped keys, notes)."""
    if source not in SOURCES:
        raise ConversionError(f"unknown source {source!r}; choose from {sorted(SOURCES)}")
    conversion = SOURCES[source](state_dict)
    if reference is not None:
        check_against(conversion.state_dict, reference, source in PARTIAL_SOURCES, source)
    return conversion


def convert(
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    reference: nn.Module | Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``state_dict`` in ``source``'s naming → ours (checked against ``reference``)."""
    return convert_with_report(state_dict, source, reference).state_dict
