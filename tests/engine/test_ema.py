"""ModelEMA against a hand computation."""

import pytest
import torch
from torch import nn

from detr_efficient.engine import ModelEMA


def _model(weight: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(weight)
    return model


def test_ema_follows_the_hand_computed_average():
    model = _model(1.0)
    ema = ModelEMA(model, decay=0.9)
    for weight, tracked in [(2.0, 3), (4.0, 7)]:
        with torch.no_grad():
            model[0].weight.fill_(weight)
        model[1].num_batches_tracked.fill_(tracked)
        ema.update(model)
    # 1.0 -> 0.9*1 + 0.1*2 = 1.1 -> 0.9*1.1 + 0.1*4 = 1.39
    assert ema.module[0].weight.item() == pytest.approx(1.39, abs=1e-6)
    assert ema.module[1].num_batches_tracked.item() == 7  # integer buffers are copied
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert model[0].weight.requires_grad  # the model itself is untouched


def test_ema_state_round_trip_and_reset():
    model = _model(3.0)
    ema = ModelEMA(model, decay=0.5)
    other = ModelEMA(_model(0.0), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.module[0].weight.item() == 3.0
    model.load_state_dict(ema.state_dict())  # the EMA state loads into the model
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
    other.reset(model)
    assert other.module[0].weight.item() == -1.0


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_bad_decay_is_rejected(decay):
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(_model(0.0), decay)
