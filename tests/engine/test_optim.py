"""Optimizer parameter groups: lr factors by prefix, norm weight decay, frozen parameters."""

import logging

import pytest
from torch import nn

from detr_efficient.engine import param_groups


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
        self.backbone_head = nn.Linear(2, 2)  # not under "backbone."
        self.frozen = nn.Linear(2, 2).requires_grad_(False)


def _lookup(groups, param):
    (group,) = [g for g in groups if any(p is param for p in g["params"])]
    return group["lr"], group["weight_decay"]


def test_groups_by_prefix_and_norm_decay(caplog):
    net = _Net()
    with caplog.at_level(logging.WARNING):
        groups = param_groups(
            net, 1.0, 0.5, weight_decay_norm=0.0, lr_factors={"backbone": 0.1, "neck": 2.0}
        )
    assert _lookup(groups, net.backbone[0].weight) == (pytest.approx(0.1), 0.5)
    assert _lookup(groups, net.backbone[1].weight) == (pytest.approx(0.1), 0.0)
    assert _lookup(groups, net.backbone_head.bias) == (1.0, 0.5)
    assert not any(p is net.frozen.weight for g in groups for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == 6
    assert "'neck' matches no trainable parameter" in caplog.text


def test_a_model_without_trainable_parameters_is_an_error():
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(nn.Linear(2, 2).requires_grad_(False), 1.0, 0.0)


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.sampling_offsets = nn.Linear(2, 2)
        self.sampling_offsets_extra = nn.Linear(2, 2)  # a different component name


def test_wildcard_keys_match_a_component_anywhere():
    net = nn.ModuleDict({"encoder": nn.ModuleList([_Attention()]), "backbone": _Attention()})
    factors = {"backbone": 0.1, "*.sampling_offsets": 0.5, "backbone.sampling_offsets": 0.2}
    groups = param_groups(net, 1.0, 0.0, lr_factors=factors)
    encoder = net["encoder"][0]
    assert _lookup(groups, encoder.sampling_offsets.weight)[0] == pytest.approx(0.5)
    assert _lookup(groups, encoder.sampling_offsets_extra.weight)[0] == 1.0
    # the longest matching key wins: "backbone.sampling_offsets" over "*.sampling_offsets"
    assert _lookup(groups, net["backbone"].sampling_offsets.bias)[0] == pytest.approx(0.2)
    assert _lookup(groups, net["backbone"].sampling_offsets_extra.bias)[0] == pytest.approx(0.1)
