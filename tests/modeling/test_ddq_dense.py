"""DDQ-FCN and DDQ R-CNN: point grid and box decoding by hand, the per-level candidates and
the distinct queries against plain PyTorch / torchvision, R-CNN box deltas against
Detectron2, the dynamic interaction against einsum, losses and gradients, detections, the
configs through train_net."""

import sys
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.box_regression import Box2BoxTransform
from torchvision.ops import nms

from detr_efficient.data import register_shapes
from detr_efficient.engine import do_eval, do_train
from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy
from detr_efficient.modeling.ddq import (
    DenseHead,
    DynamicInteraction,
    RefinementStage,
    apply_box_deltas,
    level_points,
)
from detr_efficient.modeling.ddq.fcn_head import geometric_mean_logit
from detr_efficient.modeling.detector import normalized_images

sys.path.insert(0, str(Path(__file__).parent))
from test_detectors import _batch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHAPES = "configs/ddq/models/ddq_fcn_shapes.py"
RCNN = "configs/ddq/models/ddq_rcnn_shapes.py"


def _model(**overrides):
    cfg = LazyConfig.load(str(REPO / SHAPES))
    cfg = LazyConfig.apply_overrides(cfg, [f"model.{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    return instantiate(cfg.model)


def test_level_points_are_cell_centres_row_major():
    points = level_points(2, 3, 8, "cpu")
    expected = torch.tensor([[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]).float()
    assert torch.equal(points, expected)


def test_dense_head_decodes_distances_around_each_point():
    head = DenseHead(16, num_classes=3, strides=(8, 16), convs=1, groups=4)
    with torch.no_grad():
        head.predictor.bbox_pred.weight.zero_()
        head.predictor.bbox_pred.bias.copy_(torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0])))
        head.predictor.scales.copy_(torch.tensor([1.0, 0.5]))
    features = [torch.randn(2, 16, 4, 6), torch.randn(2, 16, 2, 3)]
    out = head(features)
    assert out.logits.shape == (2, 24 + 6, 3) and out.boxes.shape == (2, 30, 4)
    assert out.towers.shape == (2, 30, 32) and out.aux_logits is None
    # first point of level 1 (stride 16, scale 0.5): centre (8, 8), distances (1, 2, 3, 4) * 8
    torch.testing.assert_close(out.boxes[0, 24], torch.tensor([8 - 8, 8 - 16, 8 + 24, 8 + 32.0]))
    # scores start near sqrt(0.01 * 0.5): class prior 0.01, objectness 0.5 (DDQ's init)
    mean = torch.sigmoid(out.logits).mean()
    torch.testing.assert_close(mean, torch.tensor(0.005**0.5), atol=5e-3, rtol=0)
    aux = head(features, with_aux=True)  # the one-to-many predictor: objectness prior 0.01
    assert aux.aux_logits.shape == (2, 30, 3) and aux.aux_boxes.shape == (2, 30, 4)
    torch.testing.assert_close(
        torch.sigmoid(aux.aux_logits).mean(), torch.tensor(0.01), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(aux.logits, out.logits)
    with pytest.raises(ValueError, match="feature levels"):
        head(features[:1])
    with pytest.raises(ValueError, match="aux=True"):
        DenseHead(16, num_classes=3, strides=(8,), convs=1, groups=4, aux=False)(
            features[:1], with_aux=True
        )


def test_geometric_mean_logit_is_the_logit_of_the_geometric_mean():
    a = torch.tensor([-30.0, -3.0, 0.0, 2.5, 8.0, 40.0], dtype=torch.float64)
    b = torch.tensor([[-5.0], [0.0], [60.0]], dtype=torch.float64)
    expected = torch.sqrt(torch.sigmoid(a) * torch.sigmoid(b))
    got = torch.sigmoid(geometric_mean_logit(a, b).double())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    x = a.float().requires_grad_(True)
    y = b.float().requires_grad_(True)
    geometric_mean_logit(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_candidates_are_each_levels_best_valid_points():
    model = _model(candidates_per_level=3)
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 10, generator=g)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[1, 6:] = False  # image 1: the second level has only 2 valid points
    index = model.select_candidates(scores, valid, [4, 6])
    for b in range(2):
        for level, (start, size) in enumerate([(0, 4), (4, 6)]):
            part = index[b, 3 * level : 3 * level + 3]
            ok = valid[b, start : start + size].nonzero()[:, 0]
            ranked = ok[scores[b, start + ok].argsort(descending=True)][:3] + start
            expected = torch.full((3,), -1)
            expected[: len(ranked)] = ranked
            assert torch.equal(part, expected)


def test_training_losses_and_gradients():
    model = _model().train()
    losses = model(_batch())
    assert set(losses) == {"loss_class", "loss_giou", "loss_aux_class", "loss_aux_giou"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    model.one_to_many_loss = None
    assert set(model(_batch())) == {"loss_class", "loss_giou"}


def test_the_one_to_many_loss_takes_the_second_predictors_own_candidates():
    model = _model().train()
    images, mask = normalized_images(
        _batch(), model.pixel_mean, model.pixel_std, model.backbone.size_divisibility
    )
    with torch.no_grad():
        q = model.queries(_batch())
        out, valid, sizes = model.dense_queries(model.feature_maps(images), images, mask)
    _, aux_logits, aux_boxes, _ = model.candidates(out.aux_logits, out.aux_boxes, valid, sizes)
    torch.testing.assert_close(q.dense_logits, aux_logits)
    torch.testing.assert_close(q.dense_boxes, aux_boxes)
    for b in range(len(q.distinct_logits)):  # distinct queries: the main predictor's points
        rows = q.distinct_logits[b][q.distinct_valid[b]]
        assert (rows[:, None] == out.logits[b][None]).all(-1).any(-1).all()
        assert not (rows[:, None] == out.aux_logits[b][None]).all(-1).any(-1).any()


def test_detections_are_distinct_nms_survivors_in_original_coordinates(monkeypatch):
    model = _model(num_detections=1000).eval()
    captured = {}
    select = model.select_candidates

    def spy(scores, valid, sizes):
        captured["index"] = select(scores, valid, sizes)
        return captured["index"]

    monkeypatch.setattr(model, "select_candidates", spy)
    with torch.no_grad():
        outputs = model(_batch())
        images, mask = normalized_images(
            _batch(), model.pixel_mean, model.pixel_std, model.backbone.size_divisibility
        )
        out, *_ = model.dense_queries(model.feature_maps(images), images, mask)
        logits, boxes = out.logits, out.boxes
    first = outputs[0]["instances"]
    assert first.image_size == (48, 64)  # the original size, half the network input
    # the detected boxes are exactly torchvision's NMS survivors among the candidates
    index = captured["index"][0]
    index = index[index >= 0]
    h, w = images.image_sizes[0]
    xyxy = box_cxcywh_to_xyxy(boxes[0, index]) * torch.tensor([w, h, w, h])
    keep = nms(xyxy, logits[0, index].sigmoid().amax(-1), 0.7)[: model.num_queries]
    kept = (xyxy[keep] * 0.5).clamp(min=0)
    kept[:, 0::2] = kept[:, 0::2].clamp(max=64)
    kept[:, 1::2] = kept[:, 1::2].clamp(max=48)
    kept = kept[(kept[:, 2] > kept[:, 0]) & (kept[:, 3] > kept[:, 1])]  # Detectron2 drops empties
    detected = first.pred_boxes.tensor.unique(dim=0)
    expected = kept.unique(dim=0)
    assert detected.shape == expected.shape
    torch.testing.assert_close(detected, expected, atol=1e-3, rtol=1e-4)
    assert len(first) <= model.num_queries * model.num_classes


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="top_k=1"):
        _model(**{"one_to_one_loss.top_k": 4})
    with pytest.raises(ValueError, match="in_features"):
        _model(in_features="[p3,p4]")
    with pytest.raises(ValueError, match="must be >= 1"):
        _model(num_queries=0)


def test_box_deltas_match_detectron2():
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 8.0, 64.0]])
    deltas = torch.randn(2, 4, generator=g)
    deltas[1, 2] = 20.0  # past the clamp
    reference = Box2BoxTransform(weights=(2.0, 2.0, 1.0, 1.0)).apply_deltas(deltas, boxes)
    torch.testing.assert_close(apply_box_deltas(deltas, boxes), reference)


def test_dynamic_interaction_against_einsum():
    torch.manual_seed(0)
    module = DynamicInteraction(embed_dim=8, dynamic_dim=3, bins=4).eval()
    queries, rois = torch.randn(5, 8), torch.randn(5, 4, 8)
    params = module.dynamic_layer(queries)
    first, second = params[:, :24].reshape(5, 8, 3), params[:, 24:].reshape(5, 3, 8)
    x = torch.relu(module.norm1(torch.einsum("npc,ncd->npd", rois, first)))
    x = torch.relu(module.norm2(torch.einsum("npd,ndc->npc", x, second)))
    expected = torch.relu(module.norm3(module.out_layer(x.reshape(5, 32))))
    torch.testing.assert_close(module(queries, rois), expected)


def test_a_fresh_stages_box_tower_gets_gradients_from_the_first_step():
    # As mmdet's DIIHead (Sparse R-CNN's and DDQ's head): the delta layer is Xavier like every
    # other matrix. Zero-initialised, it would pass no gradient to the 3-layer box tower at
    # first (the shapes DDQ R-CNN's stages then hardly learned: 2.8 AP, BENCHMARKS.md).
    torch.manual_seed(0)
    stage = RefinementStage(embed_dim=16, num_classes=3, num_heads=2, ffn_dim=32, dynamic_dim=4)
    queries, rois = torch.randn(2, 5, 16), torch.randn(10, 16, 7, 7)
    boxes = torch.tensor([10.0, 10.0, 50.0, 70.0]).repeat(2, 5, 1)
    _, _, refined = stage(queries, rois, boxes)
    assert not torch.equal(refined, boxes)  # the fresh stage already moves the boxes
    (refined - boxes).abs().sum().backward()
    for layer in stage.reg_tower:
        if isinstance(layer, torch.nn.Linear):
            assert layer.weight.grad.abs().sum() > 0


def test_rcnn_losses_gradients_and_nested_distinct_sets():
    model = _rcnn().train()
    losses = model(_batch())
    assert set(losses) == {
        "loss_fcn_class",
        "loss_fcn_giou",
        "loss_aux_class",
        "loss_aux_giou",
        *(f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0")),
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    with torch.no_grad():
        q = model.queries(_batch())
        stages = model.refine(q)
    assert len(stages) == 2
    previous = q.distinct_valid
    for logits, boxes, distinct in stages:
        assert logits.shape == (2, model.num_queries, 5) and boxes.shape[-1] == 4
        assert not (distinct & ~previous).any()  # NMS only ever removes queries
        previous = distinct


def test_rcnn_stages_learn_from_detached_head_features_and_boxes():
    # DDQ's code: the queries' content is compress(both towers' features).detach() and their
    # boxes are detached, so the stage losses train the stages and compress, not the head.
    model = _rcnn().train()
    losses = model(_batch())
    stage_losses = [v for k, v in losses.items() if not k.startswith(("loss_fcn_", "loss_aux_"))]
    sum(stage_losses).backward()
    assert model.compress.weight.grad is not None and model.compress.in_features == 2 * 128
    assert all(p.grad is None for p in model.head.parameters())
    assert all(p.grad is not None for p in model.stages.parameters())


def test_rcnn_outputs_only_the_last_stages_distinct_queries(monkeypatch):
    model = _rcnn(num_detections=10000).eval()
    refine = model.refine
    captured = {}

    def spy(q):
        captured["stages"] = refine(q)
        return captured["stages"]

    monkeypatch.setattr(model, "refine", spy)
    with torch.no_grad():
        outputs = model(_batch())
    _, _, distinct = captured["stages"][-1]
    assert not distinct.all()  # some query was suppressed, so the check below can fail
    for output, count in zip(outputs, distinct.sum(1).tolist(), strict=True):
        assert len(output["instances"]) <= count * model.num_classes


def test_rcnn_pools_fp32_maps_and_exact_boxes_under_bf16_autocast(monkeypatch):
    # Detectron2's ROIAlign casts the boxes to the maps' dtype: with the bf16 maps of autocast
    # a 1000-px box edge would be rounded to a multiple of 4 px.
    model = _rcnn().eval()
    pool, seen = model.pooler.forward, []

    def spy(maps, boxes):
        seen.append(({m.dtype for m in maps}, {b.tensor.dtype for b in boxes}))
        return pool(maps, boxes)

    monkeypatch.setattr(model.pooler, "forward", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        q = model.queries(_batch())
        assert {m.dtype for m in q.maps} == {torch.bfloat16}  # so the check below can fail
        model.refine(q)
    assert seen == [({torch.float32}, {torch.float32})] * len(model.stages)
    maps = [torch.randn(1, 128, 128 >> i, 128 >> i) for i in range(4)]
    boxes = torch.tensor([[[101.3, 203.7, 1001.4, 1013.9], [5.2, 7.9, 61.3, 40.1]]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = model._pool(maps, boxes)
    assert torch.equal(pooled, model._pool(maps, boxes))
    assert not torch.allclose(model._pool(maps, boxes.bfloat16().float()), pooled)


def _rcnn(**overrides):
    cfg = LazyConfig.load(str(REPO / RCNN))
    cfg = LazyConfig.apply_overrides(cfg, [f"model.{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(0)
    return instantiate(cfg.model)


@pytest.mark.parametrize("eval_only", [False, True])
@pytest.mark.parametrize("config", ["ddq_fcn_shapes_cpu", "ddq_rcnn_shapes_cpu"])
def test_the_shapes_configs_train_and_evaluate_through_train_net(tmp_path, config, eval_only):
    register_shapes(f"{config}_val_{eval_only}", tmp_path / "data", "val", num_images=2, seed=4)
    cfg = LazyConfig.load(str(REPO / f"configs/ddq/{config}.py"))
    cfg = LazyConfig.apply_overrides(
        cfg,
        [
            f"train.output_dir={tmp_path}",
            "train.device=cpu",
            "train.max_iter=2",
            "train.checkpointer.period=1000000",
            "dataloader.train.total_batch_size=2",
            "dataloader.train.num_workers=0",
            "dataloader.test.num_workers=0",
            f"dataloader.test.dataset.names={config}_val_{eval_only}",
            "train.init_checkpoint=",
        ],
    )
    if eval_only:
        results = do_eval(cfg)
        assert {"AP", "AP50"} <= set(results["bbox"])
    else:
        assert do_train(cfg).iter == 2
        assert '"bbox/AP"' in (tmp_path / "metrics.json").read_text()
