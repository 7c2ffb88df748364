"""theory/mup: exponents against the models' resolved parameterization and against a measured Adam step."""

import math

import numpy as np
import pytest
import torch

from lmech.models.parameterization import resolve_layers
from lmech.theory.mup import optimal_lr_exponent, predicted_optimal_lr, update_exponents


def test_optimal_lr_exponents():
    assert optimal_lr_exponent("sp") == -1.0
    assert optimal_lr_exponent("mup") == 0.0
    np.testing.assert_allclose(predicted_optimal_lr(np.array([32, 64, 512]), 32, 0.01, "sp"),
                               [0.01, 0.005, 0.01 / 16], rtol=1e-12)  # exact arithmetic
    np.testing.assert_allclose(predicted_optimal_lr(np.array([32, 512]), 32, 0.01, "mup"), [0.01, 0.01],
                               rtol=1e-12)
    with pytest.raises(ValueError, match="ntk"):
        optimal_lr_exponent("ntk")


@pytest.mark.parametrize("parameterization", ["sp", "mup"])
def test_exponents_agree_with_the_models_table(parameterization):
    """Second source: the lr and forward multipliers lmech.models resolves at two widths."""
    small = resolve_layers(parameterization, [8, 64, 64, 3], "relu", "adam", base_width=64)
    large = resolve_layers(parameterization, [8, 256, 256, 3], "relu", "adam", base_width=64)
    ratio = 4.0
    for role, a, b in zip(("input", "hidden", "output"), small, large):
        fan_in_power = math.log(b.fan_in / a.fan_in, ratio)
        lr_power = math.log(b.weight_lr_multiplier / a.weight_lr_multiplier, ratio)
        # effective forward multiplier: init_std folded in only where it is a forward factor
        multiplier_power = math.log(b.multiplier / a.multiplier, ratio)
        assert abs(fan_in_power + lr_power + multiplier_power - update_exponents(parameterization)[role]) < 1e-12


def _one_adam_step_change(width: int, parameterization: str, role: int) -> float:
    """RMS change of layer `role`'s pre-activations when only that layer takes one Adam step
    (lr * sign(grad) at step 1) on a 2-hidden-layer linear net, in float64."""
    g = torch.Generator().manual_seed(0)
    layers = resolve_layers(parameterization, [4, width, width, 1], "linear", "adam", base_width=16)
    weights = [torch.randn(l.fan_in, l.fan_out, generator=g, dtype=torch.float64) * l.init_std for l in layers]
    x = torch.randn(64, 4, generator=g, dtype=torch.float64)
    for w in weights:
        w.requires_grad_(True)

    def inputs_and_z(ws):
        h = x
        for index, (layer, w) in enumerate(zip(layers, ws)):
            if index == role:
                return h, layer.multiplier * h @ w
            h = layer.multiplier * h @ w
        raise AssertionError

    h = x
    for layer, w in zip(layers, weights):
        h = layer.multiplier * h @ w
    grad = torch.autograd.grad(h.sum(), weights[role])[0]
    incoming, z = inputs_and_z([w.detach() for w in weights])
    update = -1e-3 * layers[role].weight_lr_multiplier * torch.sign(grad)
    delta = layers[role].multiplier * incoming @ update
    return float(delta.pow(2).mean().sqrt())


@pytest.mark.parametrize("parameterization", ["sp", "mup"])
def test_first_adam_step_grows_like_the_predicted_exponent(parameterization):
    """Adam's first step is lr * sign(grad); each layer's own pre-activation change has the predicted slope."""
    for role, name in enumerate(("input", "hidden", "output")):
        small = _one_adam_step_change(64, parameterization, role)
        large = _one_adam_step_change(1024, parameterization, role)
        slope = math.log(large / small, 16)
        assert abs(slope - update_exponents(parameterization)[name]) < 0.15, (name, slope)  # finite width


def test_negative_control_a_wrong_exponent_is_detected():
    small = _one_adam_step_change(64, "sp", 1)
    large = _one_adam_step_change(1024, "sp", 1)
    assert abs(math.log(large / small, 16) - update_exponents("mup")["hidden"]) > 0.5
