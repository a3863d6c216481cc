"""configs/common train/optim/schedule: loading from any directory, overrides, checks."""

import re
import runpy
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from detr_efficient.engine import ConfigError, check_config, check_train_config
from detr_efficient.engine.config import TRAIN_SCHEMA

COMMON = Path(__file__).resolve().parents[2] / "configs" / "common"


def test_common_configs_load_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = LazyConfig.load(str(COMMON / "train.py")).train
    assert set(train) == set(TRAIN_SCHEMA)
    train.device = "cpu"
    check_train_config(train)
    optim = LazyConfig.load(str(COMMON / "optim.py"))
    assert set(optim) == {"AdamW"}
    schedule = LazyConfig.load(str(COMMON / "schedule.py"))
    assert {f"lr_multiplier_{n}ep" for n in (12, 24, 36, 50)} <= set(schedule)


@pytest.mark.parametrize(
    ("name", "total", "decay"),
    [
        ("12ep", 90000, 82500),
        ("24ep", 180000, 150000),
        ("36ep", 270000, 225000),
        ("50ep", 375000, 300000),
    ],
)
def test_coco_schedules_decay_once(name, total, decay):
    cfg = LazyConfig.load(str(COMMON / "schedule.py"))
    multiplier = instantiate(cfg[f"lr_multiplier_{name}"])
    assert multiplier(0.0) == 1.0
    assert multiplier((decay - 1) / total) == 1.0
    assert multiplier(decay / total) == pytest.approx(0.1)
    assert multiplier((total - 1) / total) == pytest.approx(0.1)


def test_multistep_multiplier_warmup_and_checks():
    make = runpy.run_path(str(COMMON / "schedule.py"))["multistep_lr_multiplier"]
    multiplier = instantiate(make(max_iter=100, decay_iters=[80, 50], warmup_iters=10))
    assert multiplier(0.0) == pytest.approx(0.001)
    assert multiplier(0.05) == pytest.approx(0.001 + 0.5 * (1 - 0.001))
    assert multiplier(0.1) == pytest.approx(1.0)
    assert multiplier(0.5) == pytest.approx(0.1)
    assert multiplier(0.8) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="decay_iters"):
        make(max_iter=100, decay_iters=[100])
    with pytest.raises(ValueError, match="warmup_iters"):
        make(max_iter=100, decay_iters=[50], warmup_iters=100)


def test_toy_config_overrides_reach_every_part(toy_cfg):
    cfg = toy_cfg("train.max_iter=100", "model.hidden=8", "optimizer.lr=0.5")
    check_config(cfg, eval_only=False)
    assert cfg.train.max_iter == 100
    model = instantiate(cfg.model)
    assert model.backbone.out_features == 8
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lrs[id(model.backbone.weight)] == pytest.approx(0.05)  # backbone factor 0.1
    assert lrs[id(model.head.weight)] == pytest.approx(0.5)
    assert {g["weight_decay"] for g in optimizer.param_groups} == {1e-4}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("train.max_iters=5", "train.max_iters"),
        ("train.amp.dtype=fp32", "train.amp.dtype"),
        ("train.amp.dtype=fp16", "train.amp.dtype='fp16' needs a CUDA device"),
        ("train.amp.enabled=3", "train.amp.enabled"),
        ("train.max_iter=0", "train.max_iter"),
        ("train.checkpointer.max_to_keep=0", "train.checkpointer.max_to_keep"),
        ("train.model_ema.decay=1.5", "train.model_ema.decay"),
        ("train.device=tpu", "train.device"),
        ("train.clip_grad.params.max_norm=true", "train.clip_grad.params.max_norm"),
    ],
)
def test_bad_train_fields_are_named(toy_cfg, override, field):
    cfg = toy_cfg("train.amp.enabled=True", override)
    with pytest.raises(ConfigError, match=re.escape(field)):
        check_config(cfg, eval_only=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(toy_cfg):
    with pytest.raises(ConfigError, match="train.device"):
        check_config(toy_cfg("train.device=cuda"), eval_only=True)


def test_missing_entries_are_named(toy_cfg):
    cfg = toy_cfg()
    del cfg["optimizer"]
    check_config(cfg, eval_only=True)  # evaluation needs no optimizer
    with pytest.raises(ConfigError, match="optimizer"):
        check_config(cfg, eval_only=False)
