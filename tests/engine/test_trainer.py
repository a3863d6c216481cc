"""One training step: bf16 autocast on CPU, fp16 refused on CPU, gradient clipping."""

import pytest
import torch
from torch import nn

from detr_efficient.engine import Precision, Trainer


class _Batches:
    """The loader interface the trainer uses: ``iter_from`` and ``seed``."""

    seed = 0

    def __init__(self, batches):
        self.batches = batches

    def iter_from(self, start_iter):
        return iter(self.batches[start_iter:])


class _Probe(nn.Module):
    """Returns one loss; remembers the dtype its linear layer computed in."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.scale = scale
        self.seen_dtype = None

    def forward(self, batch):
        out = self.linear(torch.stack(batch))
        self.seen_dtype = out.dtype
        return {"loss_probe": self.scale * out.float().pow(2).mean()}


def _train_one_step(model, precision, **kwargs):
    torch.manual_seed(0)
    batch = [torch.randn(4) for _ in range(2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, _Batches([batch]), optimizer, precision, **kwargs)
    trainer.train(0, 1)
    return trainer, batch


def test_bf16_autocast_runs_on_cpu():
    model = _Probe()
    before = model.linear.weight.detach().clone()
    trainer, _ = _train_one_step(model, Precision(True, "bf16", torch.device("cpu")))
    assert model.seen_dtype == torch.bfloat16
    assert not trainer.precision.scaler.is_enabled()
    assert not torch.equal(model.linear.weight, before)
    assert torch.isfinite(torch.tensor(trainer.storage.history("total_loss").latest()))


def test_disabled_amp_runs_in_float32():
    model = _Probe()
    _train_one_step(model, Precision(False, "fp16", torch.device("cpu")))
    assert model.seen_dtype == torch.float32


def test_fp16_on_cpu_is_refused_clearly():
    with pytest.raises(ValueError, match="train.amp.dtype='fp16' needs a CUDA device"):
        Precision(True, "fp16", torch.device("cpu"))


def test_gradient_clipping_caps_the_global_norm():
    model = _Probe(scale=100.0)
    reference = _Probe(scale=100.0)
    reference.load_state_dict(model.state_dict())
    trainer, batch = _train_one_step(
        model, Precision(False, "bf16", torch.device("cpu")), max_grad_norm=0.5
    )
    reference(batch)["loss_probe"].backward()
    raw = torch.cat([p.grad.flatten() for p in reference.parameters()]).norm()
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert raw > 0.5
    assert clipped == pytest.approx(0.5, rel=1e-5)
    assert trainer.storage.history("grad_norm").latest() == pytest.approx(raw.item(), rel=1e-6)


def test_model_must_return_a_loss_dict():
    class Bad(_Probe):
        def forward(self, batch):
            return [super().forward(batch)["loss_probe"]]

    with pytest.raises(TypeError, match="dict of scalar losses"):
        _train_one_step(Bad(), Precision(False, "bf16", torch.device("cpu")))


def test_a_checkpoint_without_loss_scaling_resumes_under_fp16():
    # A bf16 or fp32 run saves the disabled GradScaler's empty state; an fp16 resume (its
    # scaler enabled) keeps its fresh scale instead of failing on it. CPU GradScalers stand in.
    saved, _ = _train_one_step(_Probe(), Precision(True, "bf16", torch.device("cpu")))
    state = saved.state_dict()
    assert state["grad_scaler"] == {}
    resumed, _ = _train_one_step(_Probe(), Precision(True, "bf16", torch.device("cpu")))
    resumed.precision.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    resumed.load_state_dict(state)
    assert resumed.precision.scaler.get_scale() == 1024.0
    scaled = dict(state, grad_scaler=torch.amp.GradScaler("cpu", init_scale=8.0).state_dict())
    resumed.load_state_dict(scaled)
    assert resumed.precision.scaler.get_scale() == 8.0
