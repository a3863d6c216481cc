"""Exact resume: an interrupted run resumed from its checkpoint reproduces the losses and
final state of an uninterrupted run bit for bit (CPU)."""

import contextlib

import pytest
import torch
from detectron2.engine import HookBase
from detectron2.utils.env import seed_all_rng

from detr_efficient.engine import do_train


class _LossRecorder(HookBase):
    def __init__(self):
        self.losses = {}

    def after_step(self):
        latest = self.trainer.storage.latest()
        self.losses[self.trainer.iter] = {k: v for k, (v, _) in latest.items() if "loss" in k}


class _Interrupted(Exception):
    pass


class _InterruptAfter(HookBase):
    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            raise _Interrupted


def _train(cfg, resume=False, interrupt_after=None):
    """What train_net.py does in one process: seed, then train; returns losses per iteration."""
    seed_all_rng(cfg.train.seed)
    recorder = _LossRecorder()
    hooks = [recorder] if interrupt_after is None else [recorder, _InterruptAfter(interrupt_after)]
    with contextlib.suppress(_Interrupted):
        do_train(cfg, resume=resume, extra_hooks=hooks)
    return recorder.losses


def _final_state(cfg):
    return torch.load(f"{cfg.train.output_dir}/model_final.pth", weights_only=True)


def _assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            _assert_equal_states(a[key], b[key])
        elif isinstance(a[key], list) and a[key] and isinstance(a[key][0], dict):
            for x, y in zip(a[key], b[key], strict=True):
                _assert_equal_states(x, y)
        else:
            assert a[key] == b[key], key


def _check_exact_resume(toy_cfg, *overrides):
    settings = ("train.model_ema.enabled=True", "train.clip_grad.enabled=True", *overrides)
    straight = toy_cfg(*settings, name="straight")
    interrupted = toy_cfg(*settings, name="interrupted")

    expected = _train(straight)
    assert sorted(expected) == list(range(8))
    before = _train(interrupted, interrupt_after=5)  # checkpoint at iteration 3, stop after 5
    assert before == {i: expected[i] for i in range(6)}
    with open(f"{interrupted.train.output_dir}/last_checkpoint") as f:
        assert f.read() == "model_0000003.pth"

    after = _train(toy_cfg(*settings, name="interrupted"), resume=True)
    assert after == {i: expected[i] for i in range(4, 8)}
    final, resumed = _final_state(straight), _final_state(interrupted)
    assert final["trainer"]["iteration"] == resumed["trainer"]["iteration"] == 7
    assert "ema" in final and "grad_scaler" in final["trainer"]
    _assert_equal_states(final, resumed)


def test_resume_continues_exactly(toy_cfg):
    _check_exact_resume(toy_cfg)


@pytest.mark.slow
def test_resume_continues_exactly_with_workers_and_bf16(toy_cfg):
    _check_exact_resume(
        toy_cfg,
        "dataloader.train.num_workers=2",
        "train.amp.enabled=True",
        "train.amp.dtype=bf16",
    )


def test_resume_without_a_checkpoint_starts_from_scratch(toy_cfg):
    cfg = toy_cfg("train.max_iter=2", "train.eval_period=0")
    assert sorted(_train(cfg, resume=True)) == [0, 1]
