"""DETRDistill (Chang et al., ICCV 2023): a frozen teacher DETR trains a student DETR of the
same family through its predictions, its neck features and its queries."""

from __future__ import annotations

from pathlib import Path

import torch
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn

from ..criterion import average_num_boxes
from ..detector import DeformableDetectorBase
from ..tap import DecoderTap, QueryGroup
from .features import FeatureDistillation, target_aware_mask, teacher_query_quality
from .logits import LogitsDistillation

__all__ = ["DETRDistill", "load_teacher_weights"]


def load_teacher_weights(teacher: nn.Module, path: str) -> None:
    """Load a checkpoint of this project (``{"model": state_dict}``, as ``train_net.py``
    writes) or a bare state dict into ``teacher``; every key must match."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"DETRDistill: teacher_weights file '{path}' does not exist")
    state = torch.load(file, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"DETRDistill: '{path}' holds no state dict")
    try:
        teacher.load_state_dict(state)
    except RuntimeError as error:  # missing, unexpected or wrongly shaped keys
        raise ValueError(
            f"DETRDistill: teacher_weights '{path}' do not fit the teacher: {error}"
        ) from None


@META_ARCH_REGISTRY.register()
class DETRDistill(nn.Module):
    """Student detector trained with its own losses plus DETRDistill's three:

    1. ``logits_distill`` (``LogitsDistillation``): per decoder stage, Hungarian-matching
       distillation of the teacher's predictions (all its queries), stage by stage
       (``loss_distill_{class,bbox,giou}[_i]``). With fewer student than teacher layers, the
       last student layers pair with the last teacher layers.
    2. ``feature_distill`` (``FeatureDistillation``): target-aware feature distillation of the
       neck tokens, masked by the teacher's best queries of each decoder stage
       (``loss_distill_feature[_i]``).
    3. Query-prior assignment distillation (``query_weight`` > 0): the teacher's decoder input
       queries (content through ``query_adapter`` when the widths differ, reference boxes)
       run through the student's decoder as an isolated extra group, supervised by the ground
       truth with the *teacher's* Hungarian assignment of the same stage, passed as the paper
       says (the official code leaves it out); ``loss_{class,bbox,giou}_qpad[_i]`` weighted by
       the student criterion's weights × ``query_weight``.

    Detectors with query masks (DDQ-DETR's distinct queries, ``DecoderTap.query_masks``)
    take part through the queries their masks mark only, stage by stage, in all three.

    ``teacher`` is frozen and always in eval mode; ``teacher_weights`` (a checkpoint path)
    loads it. Training refuses to start with a teacher that was never loaded (the
    ``teacher_ready`` buffer, kept in checkpoints, records it). Eval mode runs the student.
    """

    def __init__(
        self,
        *,
        student: DeformableDetectorBase,
        teacher: DeformableDetectorBase,
        teacher_weights: str | None = None,
        logits_distill: LogitsDistillation | None = None,
        feature_distill: FeatureDistillation | None = None,
        query_weight: float = 1.0,
    ) -> None:
        super().__init__()
        for role, model in (("student", student), ("teacher", teacher)):
            if not getattr(model, "supports_tap", False):
                raise ValueError(
                    f"DETRDistill: the {role} {type(model).__name__} does not expose its decoder "
                    "to distillation (supports_tap is False)"
                )
        for name, part, kind in (
            ("logits_distill", logits_distill, LogitsDistillation),
            ("feature_distill", feature_distill, FeatureDistillation),
        ):
            if part is not None and not isinstance(part, kind):
                raise TypeError(
                    f"DETRDistill: '{name}' must be a {kind.__name__} or None, got {part!r} "
                    f"(to switch it off from the command line, write model.{name}=null)"
                )
        if student.num_classes != teacher.num_classes:
            raise ValueError(
                f"DETRDistill: student and teacher class counts differ "
                f"({student.num_classes} vs {teacher.num_classes})"
            )
        self.student_layers = len(student.decoder.layers)
        self.teacher_layers = len(teacher.decoder.layers)
        if self.student_layers > self.teacher_layers:
            raise ValueError(
                f"DETRDistill: the student has more decoder layers ({self.student_layers}) "
                f"than the teacher ({self.teacher_layers})"
            )
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.register_buffer("teacher_ready", torch.tensor(False))
        if teacher_weights:
            load_teacher_weights(self.teacher, teacher_weights)
            self.teacher_ready.fill_(True)
        self.logits_distill = logits_distill
        self.feature_distill = feature_distill
        self.query_weight = float(query_weight)
        # Only with the query group on: an adapter that never gets a gradient stops DDP.
        self.query_adapter = (
            None
            if self.query_weight <= 0
            else nn.Identity()
            if teacher.embed_dim == student.embed_dim
            else nn.Linear(teacher.embed_dim, student.embed_dim)
        )

    @property
    def device(self) -> torch.device:
        return self.student.device

    def train(self, mode: bool = True) -> DETRDistill:
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def num_classes(self) -> int:
        """The class count of the student (and of the teacher: they must agree)."""
        return self.student.num_classes

    def forward(self, batched_inputs: list[dict]):
        if not self.training:
            return self.student(batched_inputs)
        if not bool(self.teacher_ready):
            raise ValueError(
                "DETRDistill: the teacher was never loaded; set model.teacher_weights to its "
                "checkpoint (or resume from a DETRDistill checkpoint)"
            )
        with torch.no_grad(), self.teacher.tapped() as teacher:
            self.teacher(batched_inputs)
        group = None
        if self.query_weight > 0:
            content = self.query_adapter(teacher.queries.content.detach())
            group = QueryGroup(content, teacher.queries.reference.detach())
        with self.student.tapped(group) as student:
            losses = dict(self.student(batched_inputs))
        targets = self.student.prepare_targets(batched_inputs)
        offset = self.teacher_layers - self.student_layers
        teacher_logits, teacher_boxes = teacher.logits[offset:], teacher.boxes[offset:]
        teacher_masks = _stage_masks(teacher, offset)

        if self.logits_distill is not None:
            losses.update(
                self.logits_distill(
                    student.logits,
                    student.boxes,
                    teacher_logits,
                    teacher_boxes,
                    _stage_masks(student, 0),
                    teacher_masks,
                )
            )
        if self.feature_distill is not None:
            losses.update(self.feature_losses(student, teacher, targets))
        if group is not None:
            losses.update(
                self.query_prior_losses(
                    student, teacher_logits, teacher_boxes, teacher_masks, targets
                )
            )
        return losses

    def feature_losses(self, student: DecoderTap, teacher: DecoderTap, targets) -> dict:
        """Target-aware feature distillation over the neck tokens (see ``FeatureDistillation``),
        one loss per teacher decoder stage, each masked by that stage's queries and
        predictions: ``loss_distill_feature`` (last stage) and ``..._<i>``; the last stage's
        alone with ``teacher_stages="last"``."""
        token_map = teacher.token_map
        sizes = [h * w for h, w in token_map.shapes]
        last = len(teacher.logits) - 1
        stages = range(last + 1) if self.feature_distill.teacher_stages == "all" else [last]
        losses = {}
        for i in stages:
            query_mask = None if teacher.query_masks is None else teacher.query_masks[i]
            quality = teacher_query_quality(
                teacher.logits[i], teacher.boxes[i], targets, query_mask
            )
            mask = target_aware_mask(
                teacher.hidden[i],
                quality,
                token_map.tokens,
                token_map.padding_mask,
                sizes,
                self.feature_distill.top_k,
            )
            name = "loss_distill_feature" + ("" if i == last else f"_{i}")
            losses[name] = self.feature_distill(
                student.token_map.tokens, token_map.tokens, mask, token_map.padding_mask, sizes
            )
        return losses

    def query_prior_losses(
        self, student: DecoderTap, teacher_logits, teacher_boxes, teacher_masks, targets
    ):
        """The teacher-query group's losses, stage i with the teacher's assignment of its
        aligned stage: ``loss_{class,bbox,giou}_qpad`` (last) and ``..._qpad_<i>``. With
        ``teacher_masks`` (a DDQ teacher), stage i's assignment and classification loss take
        only the queries the teacher kept distinct at its stage, as its own loss does."""
        criterion = self.student.criterion
        num_boxes = average_num_boxes(targets, self.device)
        losses = {}
        for i, (logits, boxes) in enumerate(
            zip(student.group_logits, student.group_boxes, strict=True)
        ):
            mask = teacher_masks[i]
            with torch.no_grad():
                indices = self.teacher.criterion.matcher(
                    teacher_logits[i], teacher_boxes[i], targets, query_mask=mask
                )
            stage = criterion.stage_losses(logits, boxes, targets, indices, num_boxes, mask)
            suffix = "_qpad" if i == self.student_layers - 1 else f"_qpad_{i}"
            for name, value in criterion.weighted(stage, suffix).items():
                losses[name] = self.query_weight * value
        return losses


def _stage_masks(tap: DecoderTap, offset: int) -> list[torch.Tensor | None]:
    """Per decoder stage from ``offset`` on, the bool ``[B, Q]`` mask of the queries that
    count in ``tap`` (None for each stage of a detector without query masks)."""
    if tap.query_masks is None:
        return [None] * (len(tap.logits) - offset)
    return list(tap.query_masks[offset:])
