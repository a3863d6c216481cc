"""A DETRDistill checkpoint (``student.*``, ``teacher.*``, the distillation adapters) → the
student detector alone, loadable with the student's own config."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .core import Conversion, Converter

__all__ = ["convert"]


def convert(state_dict: Mapping[str, torch.Tensor]) -> Conversion:
    """``student.<key>`` → ``<key>``; the teacher, the query and feature adapters and the
    ``teacher_ready`` flag are dropped (training-only)."""
    c = Converter("detr-distill-student", state_dict)
    c.require("teacher_ready", "a DETRDistill checkpoint has it")
    c.rename([(r"student\.(.+)", r"\1")])
    c.drop(r"teacher\..+", "the frozen teacher (training only)")
    c.drop(r"(query_adapter|feature_distill)\..+", "a distillation adapter (training only)")
    c.drop(r"teacher_ready", "DETRDistill's teacher-loaded flag")
    return c.finish()
