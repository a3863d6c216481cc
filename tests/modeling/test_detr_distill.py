"""DETRDistill: the matching cost and logits loss against brute force, the target-aware mask
and feature loss on hand-made cases, the isolated query group, the teacher's assignment for
the query-prior losses, teacher loading and freezing, and the shapes config end to end."""

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from detectron2.config import LazyConfig, instantiate
from torch import nn
from torchvision.ops import box_iou, generalized_box_iou

from detr_efficient.data import register_shapes
from detr_efficient.engine import do_train, param_groups
from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy
from detr_efficient.modeling.conversion import ConversionError, convert
from detr_efficient.modeling.detr_distill import (
    DETRDistill,
    FeatureDistillation,
    LogitsDistillation,
    distillation_cost,
    load_teacher_weights,
    match_to_teacher,
    target_aware_mask,
    teacher_query_quality,
)
from detr_efficient.modeling.tap import QueryGroup, isolated_group_mask

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch, _model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DISTILL = "configs/detr_distill/models/dino_shapes_distill.py"
DDQ_DISTILL = "configs/detr_distill/models/ddq_detr_shapes_distill.py"
WEIGHTS = (1.0, 5.0, 2.0)


def _boxes(n: int, generator) -> torch.Tensor:
    centre = 0.2 + 0.6 * torch.rand(n, 2, generator=generator)
    size = 0.05 + 0.3 * torch.rand(n, 2, generator=generator)
    return torch.cat([centre, size], dim=1)


def _pair_loss(logit, score, box, target_box) -> float:
    """The weighted distillation loss of one (student, teacher) pair, in float64."""
    bce = F.binary_cross_entropy_with_logits(logit.double(), score.double(), reduction="sum")
    l1 = (box.double() - target_box.double()).abs().sum()
    giou = generalized_box_iou(
        box_cxcywh_to_xyxy(box.double())[None], box_cxcywh_to_xyxy(target_box.double())[None]
    )[0, 0]
    return float(WEIGHTS[0] * bce + WEIGHTS[1] * l1 + WEIGHTS[2] * (1 - giou))


def test_distillation_cost_is_the_pair_loss_up_to_a_constant():
    g = torch.Generator().manual_seed(0)
    logits, scores = torch.randn(5, 3, generator=g), torch.rand(4, 3, generator=g)
    boxes, teacher_boxes = _boxes(5, g), _boxes(4, g)
    cost = distillation_cost(logits, boxes, scores, teacher_boxes, WEIGHTS)
    expected = torch.tensor(
        [
            [_pair_loss(logits[s], scores[t], boxes[s], teacher_boxes[t]) for s in range(5)]
            for t in range(4)
        ],
        dtype=torch.float64,
    )
    # the cost drops the constant GIoU offset: cost = loss - giou_weight
    torch.testing.assert_close(cost.double(), expected - WEIGHTS[2], atol=1e-4, rtol=1e-5)


def test_logits_distillation_takes_the_cheapest_assignment_by_brute_force():
    g = torch.Generator().manual_seed(1)
    student_logits, student_boxes = torch.randn(1, 4, 3, generator=g), _boxes(4, g)[None]
    teacher_logits, teacher_boxes = torch.randn(1, 3, 3, generator=g), _boxes(3, g)[None]
    scores = teacher_logits.sigmoid()
    best = min(
        sum(
            _pair_loss(student_logits[0, s], scores[0, t], student_boxes[0, s], teacher_boxes[0, t])
            for t, s in enumerate(chosen)
        )
        for chosen in itertools.permutations(range(4), 3)
    )
    losses = LogitsDistillation(*WEIGHTS).stage_loss(
        student_logits, student_boxes, teacher_logits, teacher_boxes
    )
    assert math.isclose(float(sum(losses.values())) * 3, best, rel_tol=1e-5)


def test_only_the_marked_predictions_are_paired_by_brute_force():
    g = torch.Generator().manual_seed(4)
    student_logits, student_boxes = torch.randn(1, 5, 3, generator=g), _boxes(5, g)[None]
    teacher_logits, teacher_boxes = torch.randn(1, 4, 3, generator=g), _boxes(4, g)[None]
    scores = teacher_logits.sigmoid()
    student_mask = torch.tensor([[True, False, True, True, False]])
    teacher_mask = torch.tensor([[True, True, False, True]])
    students, teachers = [0, 2, 3], [0, 1, 3]
    best = min(
        sum(
            _pair_loss(student_logits[0, s], scores[0, t], student_boxes[0, s], teacher_boxes[0, t])
            for t, s in zip(teachers, chosen, strict=True)
        )
        for chosen in itertools.permutations(students)
    )
    distill = LogitsDistillation(*WEIGHTS)
    losses = distill.stage_loss(
        student_logits, student_boxes, teacher_logits, teacher_boxes, student_mask, teacher_mask
    )
    assert math.isclose(float(sum(losses.values())) * 3, best, rel_tol=1e-5)
    [(student_idx, teacher_idx)] = match_to_teacher(
        student_logits, student_boxes, scores, teacher_boxes, WEIGHTS, student_mask, teacher_mask
    )
    assert sorted(student_idx.tolist()) == students and sorted(teacher_idx.tolist()) == teachers
    nobody = torch.zeros(1, 4, dtype=torch.bool)  # a teacher without distinct queries
    empty = distill.stage_loss(
        student_logits, student_boxes, teacher_logits, teacher_boxes, None, nobody
    )
    assert all(float(v) == 0.0 for v in empty.values())
    with pytest.raises(ValueError, match="'teacher_mask' must be bool"):
        distill.stage_loss(
            student_logits, student_boxes, teacher_logits, teacher_boxes, None, nobody[:, :3]
        )


def test_a_permuted_teacher_is_matched_back_and_only_its_entropy_remains():
    g = torch.Generator().manual_seed(2)
    logits, boxes = torch.randn(2, 6, 4, generator=g), torch.stack([_boxes(6, g), _boxes(6, g)])
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    teacher_logits, teacher_boxes = logits[:, order], boxes[:, order]
    indices = match_to_teacher(logits, boxes, teacher_logits.sigmoid(), teacher_boxes, WEIGHTS)
    for student_idx, teacher_idx in indices:
        assert torch.equal(student_idx, order[teacher_idx])
    losses = LogitsDistillation(*WEIGHTS)([logits], [boxes], [teacher_logits], [teacher_boxes])
    p = logits.sigmoid().double()
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum() / 12
    assert math.isclose(float(losses["loss_distill_class"]), float(entropy), rel_tol=1e-5)
    assert float(losses["loss_distill_bbox"]) < 1e-6 and float(losses["loss_distill_giou"]) < 1e-6


def test_logits_distillation_names_its_stages_and_gradients_reach_only_the_student():
    g = torch.Generator().manual_seed(3)
    student = [torch.randn(1, 4, 2, generator=g, requires_grad=True) for _ in range(2)]
    teacher = [torch.randn(1, 4, 2, generator=g, requires_grad=True) for _ in range(2)]
    boxes = [_boxes(4, g)[None] for _ in range(2)]
    losses = LogitsDistillation()(student, boxes, teacher, boxes)
    assert set(losses) == {
        f"loss_distill_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0")
    }
    sum(losses.values()).backward()
    assert all(x.grad is not None for x in student) and all(x.grad is None for x in teacher)
    with pytest.raises(ValueError, match="same number"):
        LogitsDistillation()(student, boxes, teacher[:1], boxes)


def test_teacher_query_quality_is_score_times_best_iou():
    logits = torch.tensor([[[0.0, 2.0], [-1.0, -3.0]], [[1.0, 1.0], [0.0, 0.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]], [[0.5] * 4, [0.3] * 4]])
    gt = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.8, 0.8, 0.1, 0.1]])
    targets = [{"boxes": gt, "labels": torch.tensor([0, 1])}, {"boxes": torch.zeros(0, 4)}]
    quality = teacher_query_quality(logits, boxes, targets)
    iou = box_iou(box_cxcywh_to_xyxy(boxes[0]), box_cxcywh_to_xyxy(gt)).amax(1)
    # the image without ground truth: the class score alone (the official code's rule)
    expected = torch.stack([logits[0].sigmoid().amax(1) * iou, logits[1].sigmoid().amax(1)])
    torch.testing.assert_close(quality, expected)
    assert math.isclose(
        float(quality[0, 0]), torch.sigmoid(torch.tensor(2.0)).item() * 0.5, rel_tol=1e-6
    )
    kept = torch.tensor([[False, True], [True, True]])  # query 0 of image 0 was suppressed
    masked = teacher_query_quality(logits, boxes, targets, kept)
    torch.testing.assert_close(masked, expected * kept)


def test_target_aware_mask_on_a_hand_made_case():
    queries = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    quality = torch.tensor([[0.8, 0.2, 0.1]])  # top_k=2 keeps the first two
    # level 0: four tokens; level 1: two tokens, the second one padding
    features = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1, 0]]])
    padding = torch.tensor([[False, False, False, False, False, True]])
    mask = target_aware_mask(queries, quality, features, padding, [4, 2], top_k=2)
    level0 = torch.tensor([0.8, 0.2, 0.01, 1.0 / math.sqrt(2)]) / 0.8
    expected = torch.cat([level0, torch.tensor([1.0, 0.0])])[None]
    torch.testing.assert_close(mask, expected)


def test_feature_distillation_loss_on_a_hand_made_case():
    distill = FeatureDistillation(student_dim=2, teacher_dim=2, weight=3.0)
    assert isinstance(distill.adapter, nn.Identity)  # equal widths: direct imitation
    teacher = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [4.0, 4.0]]])
    student = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]], requires_grad=True)
    mask = torch.tensor([[0.5, 1.0, 1.0]])
    padding = torch.tensor([[False, False, True]])  # level 1 is all padding
    loss = distill(student, teacher, mask, padding, [2, 1])
    # level 0: ((0.5 * 2)^2 + 1 + 1) / (2 tokens * 2 channels); level 1: no valid token
    assert math.isclose(loss.item(), 3.0 * 3.0 / 4.0, rel_tol=1e-6)
    loss.backward()
    assert student.grad is not None
    with pytest.raises(ValueError, match="same levels"):
        distill(student[:, :2], teacher, mask, padding, [2, 1])


def test_feature_distillation_adapter_and_stage_options():
    assert isinstance(FeatureDistillation(2, 3).adapter, nn.Linear)
    assert isinstance(FeatureDistillation(2, 2, adapter=True).adapter, nn.Linear)
    with pytest.raises(ValueError, match="cannot be switched off"):
        FeatureDistillation(2, 3, adapter=False)
    with pytest.raises(ValueError, match="teacher_stages"):
        FeatureDistillation(2, 2, teacher_stages="first")


def test_isolated_group_mask_by_hand():
    inner = torch.tensor([[False, True], [False, False]])  # query 0 may not see query 1
    mask = isolated_group_mask(inner, start=1, size=2, total=4, device="cpu")
    expected = torch.tensor(
        [
            [False, True, True, True],
            [True, False, False, True],
            [True, False, False, True],
            [False, True, True, False],
        ]
    )
    assert torch.equal(mask, expected)
    assert not isolated_group_mask(None, 0, 2, 2, "cpu").any()


@pytest.mark.parametrize(
    "name", ["dino", "deformable_detr", "focus_detr", "sparse_detr", "ddq_detr"]
)
def test_an_extra_query_group_leaves_the_detectors_own_outputs_unchanged(name):
    model = _model(name).eval()
    batch = _batch()
    with torch.no_grad(), model.tapped() as alone:
        assert model(batch) == []  # a teacher's detections would be unused: not made
    assert len(model(batch)) == len(batch)  # untapped, the detections are back
    g = torch.Generator().manual_seed(5)
    group = QueryGroup(
        torch.randn(2, 7, model.embed_dim, generator=g), _boxes(14, g).reshape(2, 7, 4)
    )
    with torch.no_grad(), model.tapped(group) as joint:
        model(batch)
    assert len(joint.group_logits) == len(model.decoder.layers)
    assert joint.group_boxes[-1].shape == (2, 7, 4)
    for a, b in zip(alone.logits + alone.boxes, joint.logits + joint.boxes, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    wrong = QueryGroup(group.content[:1], group.reference[:1])
    with pytest.raises(ValueError, match="query group"), model.tapped(wrong):
        model(batch)


def test_an_extra_query_group_leaves_ddq_detrs_training_losses_unchanged():
    model = _model("ddq_detr").train()
    torch.manual_seed(3)
    alone = model(_batch())
    g = torch.Generator().manual_seed(6)
    group = QueryGroup(
        torch.randn(2, 9, model.embed_dim, generator=g), _boxes(18, g).reshape(2, 9, 4)
    )
    torch.manual_seed(3)
    with model.tapped(group) as joint:
        together = model(_batch())
    assert alone.keys() == together.keys() and "loss_dense_class" in alone
    for name, value in alone.items():
        torch.testing.assert_close(value, together[name], atol=1e-5, rtol=1e-5)
    assert joint.group_boxes[-1].shape == (2, 9, 4)
    assert [m.shape for m in joint.query_masks] == [joint.logits[0].shape[:2]] * 3


def _distill_model(tmp_path, config=DISTILL, **overrides):
    cfg = LazyConfig.load(str(REPO / config))
    cfg = LazyConfig.apply_overrides(cfg, [f"{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    teacher = instantiate(cfg.model.teacher)
    torch.save({"model": teacher.state_dict()}, tmp_path / "teacher.pth")
    cfg.model.teacher_weights = str(tmp_path / "teacher.pth")
    torch.manual_seed(1)
    return instantiate(cfg.model), teacher


def test_distillation_trains_the_student_only_and_evaluates_as_the_student(tmp_path):
    model, teacher = _distill_model(tmp_path)
    for a, b in zip(
        model.teacher.state_dict().values(), teacher.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    model.train()
    assert not model.teacher.training and model.student.training
    losses = model(_batch())
    stages = len(model.teacher.decoder.layers)
    names = {"loss_distill_feature"} | {f"loss_distill_feature_{i}" for i in range(stages - 1)}
    names |= {
        f"{prefix}_{n}{s}"
        for prefix in ("loss_distill",)
        for n in ("class", "bbox", "giou")
        for s in ("", "_0", "_1")
    }
    names |= {f"loss_{n}_qpad{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")}
    assert names <= set(losses) and "loss_class_dn" in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    missing = [n for n, p in model.student.named_parameters() if p.grad is None]
    assert not missing
    assert model.query_adapter.weight.grad is not None
    assert model.feature_distill.adapter.weight.grad is not None

    model.eval()
    with torch.no_grad():
        distilled = model(_batch())
        alone = model.student(_batch())
    for a, b in zip(distilled, alone, strict=True):
        assert torch.equal(a["instances"].pred_boxes.tensor, b["instances"].pred_boxes.tensor)


def test_feature_losses_follow_each_teacher_stage(tmp_path):
    """One feature loss per teacher stage, masked by that stage's own queries and
    predictions (the official code); "last" keeps the last stage's alone."""
    model, _ = _distill_model(tmp_path)
    model.train()
    taps = {}
    for role in ("student", "teacher"):
        detector, original = getattr(model, role), getattr(model, role).tapped
        detector.tapped = lambda group=None, role=role, original=original: _Recording(
            original(group), taps, role
        )
    torch.manual_seed(2)
    losses = model(_batch())
    student, teacher = taps["student"], taps["teacher"]
    targets = model.student.prepare_targets(_batch())
    token_map = teacher.token_map
    sizes = [h * w for h, w in token_map.shapes]
    stages = len(teacher.logits)
    values = []
    for i in range(stages):
        quality = teacher_query_quality(teacher.logits[i], teacher.boxes[i], targets)
        mask = target_aware_mask(
            teacher.hidden[i], quality, token_map.tokens, token_map.padding_mask, sizes
        )
        expected = model.feature_distill(
            student.token_map.tokens, token_map.tokens, mask, token_map.padding_mask, sizes
        )
        name = "loss_distill_feature" + ("" if i == stages - 1 else f"_{i}")
        torch.testing.assert_close(losses[name], expected)
        values.append(float(expected.detach()))
    assert len(set(values)) == stages  # the stages' masks differ
    model.feature_distill.teacher_stages = "last"
    torch.manual_seed(2)
    last = model(_batch())
    assert not any(k.startswith("loss_distill_feature_") for k in last)
    assert math.isclose(float(last["loss_distill_feature"].detach()), values[-1], rel_tol=1e-5)


def test_no_query_adapter_without_the_query_group(tmp_path):
    model, _ = _distill_model(tmp_path, **{"model.query_weight": 0})
    assert model.query_adapter is None
    model.train()
    losses = model(_batch())
    assert not any("_qpad" in k for k in losses)
    sum(losses.values()).backward()
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_query_prior_losses_use_the_teachers_assignment(tmp_path):
    model, _ = _distill_model(tmp_path)
    model.logits_distill = model.feature_distill = None
    model.train()

    def assign(logits, boxes, targets, query_mask=None):  # the teacher's matcher: a known answer
        return [(torch.tensor([4]), torch.tensor([1])), (torch.tensor([], dtype=torch.int64),) * 2]

    model.teacher.criterion.matcher.forward = assign
    captured = {}
    original = model.student.tapped

    def tapped(group=None):
        captured["group"] = group
        return original(group)

    model.student.tapped = tapped
    losses = model(_batch())
    group = captured["group"]
    assert group is not None and group.content.shape[1] == model.teacher.num_queries
    # the group's outputs do not depend on anything else in the pass: decode it again
    with torch.no_grad(), original(group) as student:
        model.student(_batch())
    target = model.student.prepare_targets(_batch())[0]["boxes"][1]
    # group query 4 of image 0 ↔ its ground-truth box 1 and nothing else: the L1 loss is that
    # one pair's, normalised by the two boxes of the batch
    weight = model.student.criterion.weight_dict["loss_bbox"]
    for i, suffix in ((0, "_qpad_0"), (2, "_qpad")):
        expected = weight * (student.group_boxes[i][0, 4] - target).abs().sum() / 2
        torch.testing.assert_close(losses[f"loss_bbox{suffix}"].detach(), expected)


def test_ddq_detrs_distill_through_their_distinct_queries_only(tmp_path):
    # 300 queries > 256 proposals: the second image's padding tokens give padding queries
    wide = {f"model.{role}.num_queries": 300 for role in ("student", "teacher")}
    model, _ = _distill_model(tmp_path, DDQ_DISTILL, **wide)
    model.train()
    taps, stage_masks, matcher_masks = {}, [], []
    for role in ("student", "teacher"):
        detector = getattr(model, role)
        original = detector.tapped

        def tapped(group=None, role=role, original=original):
            return _Recording(original(group), taps, role)

        detector.tapped = tapped
    stage_losses = model.logits_distill.stage_losses
    model.logits_distill.stage_losses = lambda stages, students, teachers: (
        stage_masks.extend(zip(students, teachers, strict=True))
        or stage_losses(stages, students, teachers)
    )
    matcher = model.teacher.criterion.matcher.forward
    model.teacher.criterion.matcher.forward = lambda *a, query_mask=None: (
        matcher_masks.append(query_mask) or matcher(*a, query_mask=query_mask)
    )
    losses = model(_batch())
    names = {f"loss_distill_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")}
    names |= {f"loss_{n}_qpad{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")}
    names |= {"loss_distill_feature", "loss_distill_feature_0", "loss_dense_class"}
    names |= {"loss_class_dn"}
    assert names <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    student, teacher = taps["student"], taps["teacher"]
    for i, (student_mask, teacher_mask) in enumerate(stage_masks):
        assert torch.equal(student_mask, student.query_masks[i])
        assert torch.equal(teacher_mask, teacher.query_masks[i])
        assert torch.equal(matcher_masks[i], teacher.query_masks[i])
    assert len(stage_masks) == len(matcher_masks) == 3
    assert not any(bool(m.all()) for m in student.query_masks + teacher.query_masks)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not [n for n, p in model.student.named_parameters() if p.grad is None]


class _Recording:
    """A ``tapped()`` context that also files its tap under ``taps[role]``."""

    def __init__(self, context, taps, role):
        self.context, self.taps, self.role = context, taps, role

    def __enter__(self):
        tap = self.context.__enter__()
        self.taps[self.role] = tap
        return tap

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def test_teacher_weights_are_required_checked_and_kept_in_checkpoints(tmp_path):
    model, teacher = _distill_model(tmp_path)
    cfg = LazyConfig.load(str(REPO / DISTILL))
    fresh = instantiate(cfg.model).train()
    with pytest.raises(ValueError, match="teacher was never loaded"):
        fresh(_batch())
    fresh.load_state_dict(model.state_dict())  # a DETRDistill checkpoint carries the teacher
    assert bool(fresh.teacher_ready)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_teacher_weights(teacher, str(tmp_path / "nowhere.pth"))
    torch.save({"model": model.student.state_dict()}, tmp_path / "student.pth")
    with pytest.raises(ValueError, match="do not fit the teacher"):
        load_teacher_weights(teacher, str(tmp_path / "student.pth"))


def test_unsupported_pairs_are_clear_errors():
    student, teacher = _model("dino"), _model("focus_detr")
    cfg = LazyConfig.load(str(REPO / "configs/ddq/models/ddq_fcn_shapes.py"))
    with pytest.raises(ValueError, match="DDQFCN does not expose its decoder"):
        DETRDistill(student=instantiate(cfg.model), teacher=teacher)
    with pytest.raises(ValueError, match="more decoder layers"):
        DETRDistill(student=student, teacher=_model("dino", **{"model.decoder.num_layers": 2}))
    with pytest.raises(ValueError, match="class counts differ"):
        DETRDistill(student=student, teacher=_model("dino", **{"model.num_classes": 7}))
    with pytest.raises(TypeError, match="model.feature_distill=null"):
        DETRDistill(student=student, teacher=teacher, feature_distill="None")


def test_a_shallower_student_learns_from_the_teachers_last_layers(tmp_path):
    model, _ = _distill_model(tmp_path, **{"model.student.decoder.num_layers": 2})
    losses = model.train()(_batch())
    assert "loss_distill_class_0" in losses and "loss_distill_class_1" not in losses
    assert "loss_bbox_qpad_0" in losses and "loss_bbox_qpad" in losses


@pytest.mark.parametrize(
    "config, model_config",
    [("dino_shapes_cpu.py", DISTILL), ("ddq_detr_shapes_cpu.py", DDQ_DISTILL)],
)
def test_the_shapes_distillation_config_trains_through_train_net(tmp_path, config, model_config):
    register_shapes("distill_config_val", tmp_path / "data", "val", num_images=2, seed=4)
    _distill_model(tmp_path, model_config)
    cfg = LazyConfig.load(str(REPO / "configs/detr_distill" / config))
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            f"train.output_dir={tmp_path}",
            "train.device=cpu",
            f"model.teacher_weights={tmp_path / 'teacher.pth'}",
            "train.max_iter=2",
            "train.checkpointer.period=1000000",
            "dataloader.train.total_batch_size=2",
            "dataloader.train.num_workers=0",
            "dataloader.test.num_workers=0",
            "dataloader.test.dataset.names=distill_config_val",
        ],
    )
    trainer = do_train(cfg)
    assert trainer.iter == 2
    assert '"bbox/AP"' in (tmp_path / "metrics.json").read_text()
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)["model"]
    assert bool(saved["teacher_ready"])


def test_the_student_converts_out_of_a_distillation_checkpoint(tmp_path):
    model, _ = _distill_model(tmp_path)
    student = convert(model.state_dict(), "detr-distill-student", reference=model.student)
    assert student.keys() == model.student.state_dict().keys()
    for key, value in model.student.state_dict().items():
        assert torch.equal(student[key], value)
    with pytest.raises(ConversionError, match="teacher_ready"):
        convert(model.student.state_dict(), "detr-distill-student")


def test_the_coco_recipe_gives_the_students_backbone_a_tenth_of_the_lr(tmp_path):
    cfg = LazyConfig.load(
        str(REPO / "configs/detr_distill/deformable_detr_r101_to_r50_two_stage_50ep.py")
    )
    model, _ = _distill_model(tmp_path)
    groups = param_groups(model, 1.0, 0.0, lr_factors=cfg.optimizer.params.lr_factors)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["student.backbone.stem.conv1.weight"])] == pytest.approx(0.1)
    offsets = "student.decoder.layers.0.cross_attn.sampling_offsets.weight"
    assert lr_of[id(named[offsets])] == pytest.approx(0.1)
    assert lr_of[id(named["student.class_head.weight"])] == pytest.approx(1.0)
    assert not any(id(p) in lr_of for p in model.teacher.parameters())
