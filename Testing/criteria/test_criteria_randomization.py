"""Cascading / independent randomization: forward order, seeds, BatchNorm policies, no mutation."""

import copy

import pytest
import torch
from torch import nn

from SaliencyTrustLib.criteria import (cascading_randomization, fully_randomized,
                                       independent_randomization, layer_seed,
                                       randomization_units, trace_forward_order)


class RegisteredBackwards(nn.Module):
    """Modules registered head-first; forward runs stem -> body -> head."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.body = nn.Conv2d(4, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.norm(self.stem(x)))
        x = torch.relu(self.body(x)).mean(dim=(2, 3))
        return self.head(x)


def _trained_bn(model):
    with torch.no_grad():
        model.norm.running_mean.fill_(0.3)
        model.norm.running_var.fill_(2.0)
        model.norm.weight.fill_(0.7)
        model.norm.bias.fill_(0.1)
    return model


def test_top_down_follows_forward_order_not_registration_order():
    torch.manual_seed(0)
    model = RegisteredBackwards()
    assert [n for n, _ in model.named_children()] == ["head", "body", "norm", "stem"]
    assert trace_forward_order(model) == ["stem", "norm", "body", "head"]
    for granularity in ("layers", "blocks"):
        cascade = cascading_randomization(model, granularity=granularity)
        assert cascade.state_names == ["original", "head", "body", "norm", "stem"]


def test_cascade_is_cumulative_and_never_touches_the_users_model():
    torch.manual_seed(0)
    model = _trained_bn(RegisteredBackwards()).train()
    before = copy.deepcopy(model.state_dict())
    seen = {}
    for state, randomized in cascading_randomization(model, granularity="layers", seed=3,
                                                     copy_each=True):
        seen[state] = randomized
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training                                   # flags untouched too
    # cumulative: at state "body" the head is still randomized, the stem still trained
    body_state = seen["body"]
    assert not torch.equal(body_state.head.weight, model.head.weight)
    assert not torch.equal(body_state.body.weight, model.body.weight)
    assert torch.equal(body_state.stem.weight, model.stem.weight)
    assert torch.equal(seen["original"].head.weight, model.head.weight)


def test_per_layer_seeds_same_weights_in_cascading_and_independent_and_reproducible():
    torch.manual_seed(0)
    model = RegisteredBackwards()
    cascading = {s: copy.deepcopy(m) for s, m in cascading_randomization(model, "layers", seed=5)}
    independent = dict(independent_randomization(model, "layers", seed=5))
    again = {s: copy.deepcopy(m) for s, m in cascading_randomization(model, "layers", seed=5)}
    other = {s: copy.deepcopy(m) for s, m in cascading_randomization(model, "layers", seed=6)}
    assert torch.equal(cascading["head"].head.weight, independent["head"].head.weight)
    assert torch.equal(cascading["stem"].body.weight, independent["body"].body.weight)
    # independent: only that unit changed
    assert torch.equal(independent["body"].head.weight, model.head.weight)
    assert torch.equal(cascading["stem"].stem.weight, again["stem"].stem.weight)
    assert not torch.equal(cascading["stem"].stem.weight, other["stem"].stem.weight)
    assert layer_seed(5, "head") != layer_seed(5, "body")


def test_batchnorm_policies():
    torch.manual_seed(0)
    model = _trained_bn(RegisteredBackwards())
    reset = fully_randomized(model, bn_policy="reset")
    assert torch.equal(reset.norm.running_mean, torch.zeros(4))
    assert torch.equal(reset.norm.running_var, torch.ones(4))
    assert torch.equal(reset.norm.weight, torch.ones(4)) and torch.equal(reset.norm.bias, torch.zeros(4))
    keep_units = [u.name for u in randomization_units(model, "layers", bn_policy="keep")]
    assert "norm" not in keep_units
    kept = fully_randomized(model, bn_policy="keep")
    assert torch.equal(kept.norm.weight, model.norm.weight)
    assert torch.equal(kept.norm.running_var, model.norm.running_var)
    affine = fully_randomized(model, bn_policy="randomize_affine")
    assert torch.equal(affine.norm.running_mean, model.norm.running_mean)     # stats kept
    assert not torch.equal(affine.norm.weight, model.norm.weight)
    assert (affine.norm.weight >= 0).all() and (affine.norm.weight <= 1).all()
    with pytest.raises(ValueError, match="bn_policy"):
        cascading_randomization(model, bn_policy="shuffle")


def test_monai_densenet_blocks_top_down():
    from SaliencyTrustLib.networks import build_classifier

    model = build_classifier("densenet_small")
    names = cascading_randomization(model, granularity="blocks").state_names
    assert names[:4] == ["original", "class_layers", "features.norm5", "features.denseblock3"]
    assert names.index("features.denseblock3") < names.index("features.transition2") \
        < names.index("features.denseblock2") < names.index("features.denseblock1") \
        < names.index("features.conv0")


def test_quantus_mprt_layer_order_agrees_on_sequential_net_and_differs_by_registration():
    """Quantus 0.6 walks ``named_modules()`` backwards (registration order) over every module with
    ``reset_parameters``; ours traces forward order. Same on a Sequential net, not otherwise."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    torch.manual_seed(0)
    sequential = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                               nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    x = torch.zeros(1, 1, 12, 12)
    quantus_order = [name for name, _ in
                     PyTorchModel(sequential, channel_first=True).get_random_layer_generator(
                         order="top_down", seed=0)]
    ours = [u.name for u in randomization_units(sequential, "layers", example_input=x)]
    assert quantus_order == ours == ["5", "2", "0"]
    backwards = RegisteredBackwards()
    quantus_backwards = [name for name, _ in PyTorchModel(backwards, channel_first=True)
                         .get_random_layer_generator(order="top_down", seed=0)]
    assert quantus_backwards == ["stem", "norm", "body", "head"]       # registration, reversed
    assert [u.name for u in randomization_units(backwards, "layers")] == \
        ["head", "body", "norm", "stem"]


def test_example_input_inference_error_is_clear():
    class NoShape(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.scale

    with pytest.raises(ValueError, match="example_input"):
        cascading_randomization(NoShape())


def test_3d_models_are_traced_from_an_inferred_volume_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(1, 2, 3), nn.BatchNorm3d(2), nn.ReLU(),
                          nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(2, 2))
    cascade = cascading_randomization(model, granularity="layers")
    assert cascade.state_names == ["original", "5", "1", "0"]
    assert cascade.settings()["units"][0]["name"] == "5"
