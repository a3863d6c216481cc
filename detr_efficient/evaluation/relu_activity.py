"""How many hidden ReLU units of a model's MLPs and FFNs are alive.

Training from scratch at a high lr can switch ReLU units off for good: a unit whose input is
negative for every row gets no gradient again. The shapes DINO's box heads died this way
(BENCHMARKS.md, seventh session), and so did most of its query-position MLP (eighth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from detr_efficient.layers import FFN, MLP

__all__ = ["HiddenActivity", "relu_activity"]


@dataclass
class HiddenActivity:
    """One hidden ReLU layer: ``positive``, the share of (row, unit) outputs above zero;
    ``alive``, the share of units above zero for at least one row; ``rows`` seen."""

    name: str
    units: int
    rows: int
    positive: float
    alive: float


class _Counter:
    def __init__(self, units: int) -> None:
        self.rows = 0
        self.positive = 0
        self.ever = torch.zeros(units, dtype=torch.bool)

    def __call__(self, module: nn.Module, inputs: tuple) -> None:
        hidden = inputs[0].detach()
        above = (hidden.reshape(-1, hidden.shape[-1]) > 0).cpu()
        self.rows += above.shape[0]
        self.positive += int(above.sum())
        self.ever |= above.any(0)


def _hidden_inputs(model: nn.Module) -> dict[str, nn.Linear]:
    """Every linear layer whose input is a ReLU output: ``MLP.layers[1:]`` and
    ``FFN.linear2``, by the name the hidden layer is reported under."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, MLP):
            for i, layer in enumerate(module.layers[1:], start=1):
                found[f"{name}.layers.{i - 1}"] = layer
        elif isinstance(module, FFN):
            found[f"{name}.linear1"] = module.linear2
    return found


def relu_activity(
    model: nn.Module, batches: Iterable, run: Callable[[nn.Module, object], object] | None = None
) -> list[HiddenActivity]:
    """Run ``model`` in eval mode without gradients over ``batches`` (``run(model, batch)``,
    default ``model(batch)``) and report every hidden ReLU layer of its ``MLP`` and ``FFN``
    modules, named by the linear layer that produces it, in module order. A layer no batch
    reached (e.g. a training-only head) has ``rows == 0`` and NaN shares."""
    runner = run if run is not None else (lambda m, batch: m(batch))
    layers = _hidden_inputs(model)
    if not layers:
        raise ValueError(f"relu_activity: {type(model).__name__} has no MLP or FFN module")
    counters = {name: _Counter(layer.in_features) for name, layer in layers.items()}
    handles = [layers[name].register_forward_pre_hook(c) for name, c in counters.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                runner(model, batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if all(c.rows == 0 for c in counters.values()):
        raise ValueError("relu_activity: no batch reached an MLP or FFN (no batches given?)")
    return [
        HiddenActivity(
            name=name,
            units=int(c.ever.numel()),
            rows=c.rows,
            positive=c.positive / (c.rows * c.ever.numel()) if c.rows else float("nan"),
            alive=float(c.ever.float().mean()) if c.rows else float("nan"),
        )
        for name, c in counters.items()
    ]
