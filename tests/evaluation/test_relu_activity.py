"""relu_activity: live hidden ReLU units of MLPs and FFNs, against hand-set weights."""

import math

import pytest
import torch
from torch import nn

from detr_efficient.evaluation import relu_activity
from detr_efficient.layers import FFN, MLP


class _Heads(nn.Module):
    """An MLP with four hidden units of known sign and an FFN over the same input."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP(1, 4, 1, 2)
        self.ffn = FFN(embed_dim=1, ffn_dim=2)
        self.unused = MLP(1, 3, 1, 2)
        with torch.no_grad():
            # hidden = relu(w * x + b) for x in {-1, +1}: always on, always on, never, x > 0
            self.mlp.layers[0].weight.copy_(torch.tensor([[0.0], [1.0], [0.0], [1.0]]))
            self.mlp.layers[0].bias.copy_(torch.tensor([1.0, 2.0, -1.0, 0.0]))
            # FFN hidden: unit 0 fires for x < 0 only, unit 1 never
            self.ffn.linear1.weight.copy_(torch.tensor([[-1.0], [0.0]]))
            self.ffn.linear1.bias.copy_(torch.tensor([0.0, -3.0]))

    def forward(self, x: torch.Tensor) -> None:
        self.mlp(x)
        self.ffn(x)


def test_shares_of_positive_outputs_and_of_units_that_ever_fire():
    model = _Heads().train()
    batches = [torch.tensor([[1.0], [1.0], [-1.0]]), torch.tensor([[[1.0]]])]  # 4 rows
    rows = {row.name: row for row in relu_activity(model, batches)}
    assert model.training  # restored

    mlp = rows["mlp.layers.0"]
    assert (mlp.units, mlp.rows) == (4, 4)
    assert mlp.positive == pytest.approx((4 + 4 + 0 + 3) / 16)
    assert mlp.alive == pytest.approx(3 / 4)

    ffn = rows["ffn.linear1"]
    assert (ffn.units, ffn.rows) == (2, 4)
    assert ffn.positive == pytest.approx(1 / 8)
    assert ffn.alive == pytest.approx(1 / 2)

    unused = rows["unused.layers.0"]
    assert unused.rows == 0 and math.isnan(unused.alive) and math.isnan(unused.positive)
    assert list(rows) == ["mlp.layers.0", "ffn.linear1", "unused.layers.0"]


def test_a_custom_runner_and_the_hooks_are_removed():
    model = _Heads()
    rows = relu_activity(model, [{"x": torch.ones(2, 1)}], run=lambda m, b: m(b["x"]))
    assert {row.name: row.rows for row in rows}["mlp.layers.0"] == 2
    assert all(not layer._forward_pre_hooks for layer in model.modules())


def test_clear_errors():
    with pytest.raises(ValueError, match="no MLP or FFN"):
        relu_activity(nn.Linear(2, 2), [torch.ones(1, 2)])
    with pytest.raises(ValueError, match="no batch"):
        relu_activity(_Heads(), [])
