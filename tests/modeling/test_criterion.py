"""SetCriterion: hand-computed float64 loss values, stage keys and weights, denoising index
layout with padded images, empty targets, gradients, bf16 inputs and input validation."""

import math

import pytest
import torch
from torch.testing import assert_close

from detr_efficient.modeling import criterion as criterion_module
from detr_efficient.modeling.criterion import SetCriterion, denoising_indices, matched_pairs
from detr_efficient.modeling.matcher import HungarianMatcher

WEIGHTS = {"loss_class": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
NAMES = ("loss_class", "loss_bbox", "loss_giou")


def hand_focal(x: float, t: float, alpha: float = 0.25, gamma: float = 2.0) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    if t:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def hand_giou(a, b) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    hull = (max(ax1, bx1) - min(ax0, bx0)) * (max(ay1, by1) - min(ay0, by0))
    return inter / union - (hull - union) / hull


def make_criterion(num_classes=3, weights=None, **kwargs):
    return SetCriterion(num_classes, HungarianMatcher(), weights or WEIGHTS, **kwargs)


def random_stage(generator, batch, queries, classes, requires_grad=False):
    logits = torch.randn(batch, queries, classes, generator=generator)
    centre = torch.rand(batch, queries, 2, generator=generator) * 0.6 + 0.2
    size = torch.rand(batch, queries, 2, generator=generator) * 0.3 + 0.05
    boxes = torch.cat([centre, size], dim=-1)
    return {
        "pred_logits": logits.requires_grad_(requires_grad),
        "pred_boxes": boxes.requires_grad_(requires_grad),
    }


def make_targets():
    return [
        {
            "labels": torch.tensor([2, 0]),
            "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.25, 0.1]]),
        },
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
    ]


def test_tiny_case_matches_hand_computation():
    logits = [[-1.0, 2.0], [0.5, -2.0]]
    boxes = [[0.52, 0.48, 0.2, 0.24], [0.2, 0.2, 0.1, 0.1]]
    tbox = [0.5, 0.5, 0.2, 0.2]
    outputs = {"pred_logits": torch.tensor([logits]), "pred_boxes": torch.tensor([boxes])}
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([tbox])}]
    losses = make_criterion(num_classes=2)(outputs, targets)
    assert set(losses) == set(NAMES)

    # Query 0 is the match (right class, nearly the same box); one target → num_boxes = 1.
    onehot = [[0, 1], [0, 0]]
    focal = sum(
        hand_focal(logits[q][k], onehot[q][k]) for q in range(2) for k in range(2)
    )  # fmt: skip
    l1 = sum(abs(p - t) for p, t in zip(boxes[0], tbox, strict=True))
    giou = hand_giou(boxes[0], tbox)
    assert losses["loss_class"].item() == pytest.approx(1.0 * focal, rel=1e-5)
    assert losses["loss_bbox"].item() == pytest.approx(5.0 * l1, rel=1e-5)
    assert losses["loss_giou"].item() == pytest.approx(2.0 * (1.0 - giou), rel=1e-5)
    assert all(value.dtype == torch.float32 for value in losses.values())


def full_outputs(generator, batch=2, queries=5, classes=3, layers=2, groups=3, max_gts=2):
    outputs = random_stage(generator, batch, queries, classes, requires_grad=True)
    outputs["aux_outputs"] = [
        random_stage(generator, batch, queries, classes, True) for _ in range(layers)
    ]
    outputs["enc_outputs"] = random_stage(generator, batch, queries, classes, True)
    dn_queries = groups * 2 * max_gts
    outputs["dn_outputs"] = {
        **random_stage(generator, batch, dn_queries, classes, True),
        "aux_outputs": [
            random_stage(generator, batch, dn_queries, classes, True) for _ in range(layers)
        ],
        "dn_meta": {"num_groups": groups, "group_size": 2 * max_gts, "max_gts": max_gts},
    }
    return outputs


def test_stage_keys_and_weighting():
    outputs = full_outputs(torch.Generator().manual_seed(0))
    unit = make_criterion(weights=dict.fromkeys(NAMES, 1.0))(outputs, make_targets())
    weighted = make_criterion(weights={"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 0.5})(
        outputs, make_targets()
    )
    suffixes = ["", "_0", "_1", "_enc", "_dn", "_dn_0", "_dn_1"]
    assert set(unit) == {name + suffix for name in NAMES for suffix in suffixes}
    assert set(weighted) == set(unit)
    for key, value in unit.items():
        name = next(name for name in NAMES if key.startswith(name))
        factor = {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 0.5}[name]
        assert_close(weighted[key], factor * value)
        assert torch.isfinite(value) and value > 0


def test_every_stage_gets_gradients_to_logits_and_boxes():
    outputs = full_outputs(torch.Generator().manual_seed(1))
    sum(make_criterion()(outputs, make_targets()).values()).backward()
    stages = [outputs, *outputs["aux_outputs"], outputs["enc_outputs"], outputs["dn_outputs"]]
    stages += outputs["dn_outputs"]["aux_outputs"]
    for stage in stages:
        for key in ("pred_logits", "pred_boxes"):
            assert stage[key].grad is not None and stage[key].grad.abs().sum() > 0


def test_stage_losses_equal_a_direct_call_on_the_matched_indices():
    generator = torch.Generator().manual_seed(2)
    outputs = random_stage(generator, 2, 6, 3)
    outputs["aux_outputs"] = [random_stage(generator, 2, 6, 3)]
    targets = make_targets()
    criterion = make_criterion()
    losses = criterion(outputs, targets)
    aux = outputs["aux_outputs"][0]
    indices = criterion.matcher(aux["pred_logits"], aux["pred_boxes"], targets)
    direct = criterion.stage_losses(aux["pred_logits"], aux["pred_boxes"], targets, indices, 2.0)
    for name in NAMES:
        assert_close(losses[f"{name}_0"], WEIGHTS[name] * direct[name])


def test_binary_encoder_targets_use_class_zero():
    generator = torch.Generator().manual_seed(3)
    targets = make_targets()
    outputs = random_stage(generator, 2, 5, 3)
    for columns in (1, 3):
        outputs["enc_outputs"] = random_stage(generator, 2, 5, columns)
        losses = make_criterion(encoder_binary_class=True)(outputs, targets)
        enc = outputs["enc_outputs"]
        zero_targets = [{**t, "labels": torch.zeros_like(t["labels"])} for t in targets]
        criterion = make_criterion(num_classes=columns)
        indices = criterion.matcher(enc["pred_logits"], enc["pred_boxes"], zero_targets)
        direct = criterion.stage_losses(
            enc["pred_logits"], enc["pred_boxes"], zero_targets, indices, 2.0
        )
        for name in NAMES:
            assert_close(losses[f"{name}_enc"], WEIGHTS[name] * direct[name])
    outputs["enc_outputs"] = random_stage(generator, 2, 5, 1)
    with pytest.raises(ValueError, match="enc_outputs"):
        make_criterion(encoder_binary_class=False)(outputs, targets)


def test_dn_indices_layout():
    meta = {"num_groups": 3, "group_size": 4, "max_gts": 2}
    (q0, t0), (q1, t1) = denoising_indices([2, 0], meta, 12)
    assert q0.tolist() == [0, 1, 4, 5, 8, 9]
    assert t0.tolist() == [0, 1, 0, 1, 0, 1]
    assert q1.numel() == t1.numel() == 0
    with pytest.raises(ValueError, match="max_gts"):
        denoising_indices([3, 0], meta, 12)
    with pytest.raises(ValueError, match="dn_meta"):
        denoising_indices([2, 0], meta, 10)
    with pytest.raises(ValueError, match="dn_meta"):
        denoising_indices([2, 0], {"num_groups": 3, "group_size": 5, "max_gts": 2}, 15)


def test_dn_losses_use_fixed_positive_indices_with_padded_images():
    groups, max_gts, classes = 3, 2, 3
    size = 2 * max_gts
    targets = make_targets()  # N_0 = 2, N_1 = 0
    generator = torch.Generator().manual_seed(4)
    outputs = random_stage(generator, 2, 5, classes)
    dn = random_stage(generator, 2, groups * size, classes)
    positives = [g * size + j for g in range(groups) for j in range(2)]
    dn["pred_boxes"][0, positives] = targets[0]["boxes"].repeat(groups, 1)
    dn["pred_boxes"][0, 1] += torch.tensor([0.01, -0.02, 0.0, 0.03])  # group 0, target 1
    dn["dn_meta"] = {"num_groups": groups, "group_size": size, "max_gts": max_gts}
    outputs["dn_outputs"] = dn
    losses = make_criterion(weights=dict.fromkeys(NAMES, 1.0))(outputs, targets)

    normaliser = 2 * groups  # num_boxes * G
    logits = dn["pred_logits"].double()
    expected_class = 0.0
    for i in range(2):
        for q in range(groups * size):
            for k in range(classes):
                positive = i == 0 and q in positives and k == targets[0]["labels"][q % size]
                expected_class += hand_focal(logits[i, q, k].item(), positive)
    assert losses["loss_class_dn"].item() == pytest.approx(expected_class / normaliser, rel=1e-5)
    assert losses["loss_bbox_dn"].item() == pytest.approx(0.06 / normaliser, rel=1e-4)
    tbox = targets[0]["boxes"][1].tolist()
    moved = dn["pred_boxes"][0, 1].tolist()
    expected_giou = (1.0 - hand_giou(moved, tbox)) / normaliser
    assert losses["loss_giou_dn"].item() == pytest.approx(expected_giou, rel=1e-4, abs=1e-7)

    # Negatives and padding queries never enter the box losses.
    dn["pred_boxes"][0, [2, 3, 6, 7]] = 0.9
    dn["pred_boxes"][1] = 0.1
    again = make_criterion(weights=dict.fromkeys(NAMES, 1.0))(outputs, targets)
    assert_close(again["loss_bbox_dn"], losses["loss_bbox_dn"])
    assert_close(again["loss_giou_dn"], losses["loss_giou_dn"])


def test_perfect_predictions_give_near_zero_box_losses():
    targets = make_targets()
    boxes = torch.full((2, 4, 4), 0.5)
    boxes[0, [3, 1]] = targets[0]["boxes"]
    logits = torch.full((2, 4, 3), -8.0)
    logits[0, 3, 2] = logits[0, 1, 0] = 8.0
    losses = make_criterion()({"pred_logits": logits, "pred_boxes": boxes}, targets)
    assert losses["loss_bbox"].item() < 1e-6
    assert losses["loss_giou"].item() < 1e-6
    assert losses["loss_class"].item() < 1e-3


def test_empty_batch_is_finite_and_connected():
    empty = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}] * 2
    outputs = full_outputs(torch.Generator().manual_seed(5), max_gts=0)
    losses = make_criterion()(outputs, empty)
    assert all(torch.isfinite(value) for value in losses.values())
    for key, value in losses.items():
        if not key.startswith("loss_class"):
            assert value.item() == 0.0 and value.requires_grad
    assert losses["loss_class"] > 0
    sum(losses.values()).backward()
    assert outputs["pred_boxes"].grad is not None
    assert outputs["dn_outputs"]["pred_boxes"].grad is not None


def test_bf16_inputs_give_float32_losses():
    generator = torch.Generator().manual_seed(6)
    outputs = full_outputs(generator)
    as_bf16 = {
        key: value.detach().bfloat16().requires_grad_(True)
        for key, value in outputs.items()
        if key in ("pred_logits", "pred_boxes")
    }
    reference = {key: value.detach().float() for key, value in as_bf16.items()}
    criterion = make_criterion()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = criterion(as_bf16, make_targets())
    expected = criterion(reference, make_targets())
    for key, value in losses.items():
        assert value.dtype == torch.float32
        assert_close(value, expected[key])
    sum(losses.values()).backward()
    assert as_bf16["pred_logits"].grad.dtype == torch.bfloat16


def test_num_boxes_is_averaged_over_the_world(monkeypatch):
    def all_reduce(tensor):
        tensor += 6.0  # the other rank holds 6 boxes

    monkeypatch.setattr(criterion_module.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(criterion_module.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(criterion_module.dist, "all_reduce", all_reduce)
    assert criterion_module.average_num_boxes(make_targets(), torch.device("cpu")) == 4.0
    monkeypatch.setattr(criterion_module.dist, "all_reduce", lambda tensor: None)
    empty = [{"labels": torch.zeros(0, dtype=torch.int64)}]
    assert criterion_module.average_num_boxes(empty, torch.device("cpu")) == 1.0


def test_bad_inputs_raise():
    generator = torch.Generator().manual_seed(7)
    targets = make_targets()
    with pytest.raises(ValueError, match="weight_dict"):
        SetCriterion(3, HungarianMatcher(), {"loss_class": 1.0, "loss_bbox": 5.0})
    criterion = make_criterion()
    good = random_stage(generator, 2, 5, 3)
    with pytest.raises(ValueError, match="outputs"):
        criterion({"pred_boxes": good["pred_boxes"]}, targets)
    with pytest.raises(ValueError, match="targets"):
        criterion(good, targets[:1])
    with pytest.raises(ValueError, match="aux_outputs"):
        criterion(good | {"aux_outputs": [random_stage(generator, 2, 5, 4)]}, targets)
    with pytest.raises(ValueError, match="aux_outputs"):
        criterion(good | {"aux_outputs": [{"pred_logits": good["pred_logits"]}]}, targets)
    dn = random_stage(generator, 2, 12, 3)
    with pytest.raises(ValueError, match="dn_meta"):
        criterion(good | {"dn_outputs": dn}, targets)
    dn["dn_meta"] = {"num_groups": 2, "group_size": 4, "max_gts": 2}  # 8 != 12 queries
    with pytest.raises(ValueError, match="dn_meta"):
        criterion(good | {"dn_outputs": dn}, targets)
    bad_labels = [{**targets[0], "labels": torch.tensor([3, 0])}, targets[1]]
    with pytest.raises(ValueError, match="labels"):
        criterion(good, bad_labels)


@pytest.mark.gpu
def test_cuda_bf16_autocast_matches_cpu():
    outputs = full_outputs(torch.Generator().manual_seed(8))
    targets = make_targets()
    expected = make_criterion()(outputs, targets)

    def to_cuda(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cuda()
        if isinstance(value, list):
            return [to_cuda(item) for item in value]
        if isinstance(value, dict) and "num_groups" not in value:
            return {key: to_cuda(item) for key, item in value.items()}
        return value

    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = make_criterion()(to_cuda(outputs), to_cuda(targets))
    for key, value in losses.items():
        assert value.dtype == torch.float32 and value.device.type == "cuda"
        assert_close(value.cpu(), expected[key].detach(), rtol=1e-4, atol=1e-5)


def test_query_mask_equals_the_losses_of_the_masked_queries_alone():
    """A stage with ``query_mask`` (DDQ's distinct queries) gives the losses of a stage holding
    only the marked queries (same per-image counts, so they can be stacked)."""
    generator = torch.Generator().manual_seed(5)
    stage = random_stage(generator, batch=2, queries=9, classes=3)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, [0, 3, 4, 8]] = True
    mask[1, [1, 2, 5, 6]] = True
    targets = make_targets()
    targets[1] = {"labels": torch.tensor([1, 1, 2]), "boxes": torch.rand(3, 4, generator=generator)}
    criterion = make_criterion()
    masked = criterion({**stage, "query_mask": mask}, targets)
    alone = criterion(
        {k: torch.stack([v[i][mask[i]] for i in range(2)]) for k, v in stage.items()}, targets
    )
    assert set(masked) == set(alone)
    for name in masked:
        assert_close(masked[name], alone[name])


def test_matcher_only_assigns_masked_queries():
    generator = torch.Generator().manual_seed(6)
    stage = random_stage(generator, batch=1, queries=6, classes=3)
    targets = [{"labels": torch.tensor([0, 2]), "boxes": torch.rand(2, 4, generator=generator)}]
    mask = torch.tensor([[False, True, False, True, True, False]])
    matcher = HungarianMatcher()
    ((query, target),) = matcher(stage["pred_logits"], stage["pred_boxes"], targets, mask)
    ((sub_query, sub_target),) = matcher(
        stage["pred_logits"][:, mask[0]], stage["pred_boxes"][:, mask[0]], targets
    )
    assert query.tolist() == [[1, 3, 4][i] for i in sub_query.tolist()]
    assert target.tolist() == sub_target.tolist()
    with pytest.raises(ValueError, match="query_mask"):
        matcher(stage["pred_logits"], stage["pred_boxes"], targets, mask.float())


def test_matched_pairs_by_hand():
    targets = [{"labels": torch.tensor([3, 1])}, {"labels": torch.tensor([0, 0, 2])}]
    indices = [(torch.tensor([5, 1]), torch.tensor([1, 0])), (torch.tensor([2]), torch.tensor([2]))]
    counts = [len(t["labels"]) for t in targets]
    image, query, target = matched_pairs(indices, torch.device("cpu"), counts)
    assert image.tolist() == [0, 0, 1] and query.tolist() == [5, 1, 2]
    assert target.tolist() == [1, 0, 2 + 2]  # image 1's target 2 follows image 0's two
    assert matched_pairs(indices, torch.device("cpu"))[2].tolist() == [1, 0, 2]  # per image
    empty = matched_pairs([(torch.tensor([]).long(),) * 2], torch.device("cpu"), [1])
    assert all(t.numel() == 0 for t in empty)
    with pytest.raises(ValueError, match="2 index pairs for 1 images"):
        matched_pairs(indices, torch.device("cpu"), counts[:1])
