"""Parameterizations (SP, NTK, muP) as data: per-layer init std, forward multiplier, lr multiplier.

A parameterization is a table of rules, one per layer role (input, hidden,
output); resolving it for concrete widths gives plain numbers per layer. It
ignores how layers are computed (see mlp.py) and how learning rates are applied
(see lmech.train).

Conventions, with fan_in the layer's input size, m = width / base_width the
width ratio, and g the activation gain (sqrt 2 for ReLU/GELU, 1 otherwise):

- init std = g * fan_in^-1/2 ("fan_in") or 1 ("unit"), times the run's init_scale;
- forward multiplier = 1 ("one") or g * fan_in^-1/2 ("fan_in"), times m^multiplier_power;
- learning-rate multiplier = m^sgd_lr_power (SGD) or m^adam_lr_power (Adam/AdamW),
  for weights; biases use the bias_* powers.

Source: Yang & Hu 2021 (Tensor Programs IV, abc-parameterizations, Table 1) and
Yang et al. 2022 (Tensor Programs V, Table 3 / Table 8 with output multiplier
1/m): muP keeps input and hidden weights at variance 1/fan_in, divides the
readout by m, multiplies SGD learning rates of vector-like parameters (input
weights, biases, readout) by m and divides Adam learning rates of matrix-like
(hidden) weights by m. At m = 1 muP equals SP. NTK parameterization:
Jacot, Gabriel & Hongler 2018, eq. (1): unit-variance weights, 1/sqrt(fan_in)
in the forward pass, width-independent learning rate.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["LayerRule", "LayerPlan", "PARAMETERIZATIONS", "resolve_layers", "activation_gain", "activate"]

ParameterizationName = Literal["sp", "ntk", "mup"]


@dataclass(frozen=True)
class LayerRule:
    """How one layer role scales with width (exponents of m = width / base_width)."""

    init_std: Literal["fan_in", "unit"] = "fan_in"
    multiplier: Literal["one", "fan_in"] = "one"
    multiplier_power: float = 0.0
    sgd_lr_power: float = 0.0
    adam_lr_power: float = 0.0
    bias_sgd_lr_power: float = 0.0
    bias_adam_lr_power: float = 0.0


_NTK = LayerRule(init_std="unit", multiplier="fan_in")

PARAMETERIZATIONS: dict[str, dict[str, LayerRule]] = {
    "sp": {"input": LayerRule(), "hidden": LayerRule(), "output": LayerRule()},
    "ntk": {"input": _NTK, "hidden": _NTK, "output": _NTK},
    "mup": {
        "input": LayerRule(sgd_lr_power=1.0, bias_sgd_lr_power=1.0),
        "hidden": LayerRule(adam_lr_power=-1.0, bias_sgd_lr_power=1.0),
        "output": LayerRule(multiplier_power=-1.0, sgd_lr_power=1.0),
    },
}


@dataclass(frozen=True)
class LayerPlan:
    """One resolved layer: W has shape (fan_in, fan_out); z = multiplier * h @ W + b."""

    fan_in: int
    fan_out: int
    init_std: float
    multiplier: float
    weight_lr_multiplier: float
    bias_lr_multiplier: float


def activation_gain(activation: str) -> float:
    """Variance-preserving gain: sqrt(2) for ReLU and GELU, 1 for tanh, linear and square.

    square (phi(z) = z^2) is homogeneous of degree 2, so no constant gain preserves the
    variance at every scale; gain 1 keeps z at unit variance for unit-variance inputs
    (then E[phi(z)^2] = 3).
    """
    return math.sqrt(2.0) if activation in ("relu", "gelu") else 1.0


def activate(z: torch.Tensor, activation: str) -> torch.Tensor:
    """phi(z) for the activations the families name: relu, tanh, gelu, square (z^2, Gromov 2023),
    abs; anything else ("linear") is the identity."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "tanh":
        return torch.tanh(z)
    if activation == "gelu":
        return torch.nn.functional.gelu(z)
    if activation == "square":
        return z * z
    if activation == "abs":
        return z.abs()
    return z


def resolve_layers(
    parameterization: str,
    sizes: list[int],
    activation: str,
    optimizer_family: Literal["sgd", "adam"],
    base_width: int,
) -> tuple[LayerPlan, ...]:
    """Resolve a named parameterization for layer sizes [D, H, ..., H, C].

    The width ratio m is (hidden width) / base_width; networks without hidden
    layers use m = 1. The output layer gets gain 1 (no nonlinearity follows it).
    """
    rules = PARAMETERIZATIONS[parameterization]
    n_layers = len(sizes) - 1
    width = sizes[1] if n_layers > 1 else base_width
    m = width / base_width
    gain = activation_gain(activation)
    plans = []
    for index in range(n_layers):
        fan_in, fan_out = sizes[index], sizes[index + 1]
        role = "output" if index == n_layers - 1 else ("input" if index == 0 else "hidden")
        if n_layers == 1:
            role = "output"
        rule = rules[role]
        layer_gain = 1.0 if role == "output" else gain
        scale = layer_gain / math.sqrt(fan_in)
        family_power = rule.sgd_lr_power if optimizer_family == "sgd" else rule.adam_lr_power
        bias_power = rule.bias_sgd_lr_power if optimizer_family == "sgd" else rule.bias_adam_lr_power
        plans.append(LayerPlan(
            fan_in=fan_in,
            fan_out=fan_out,
            init_std=scale if rule.init_std == "fan_in" else 1.0,
            multiplier=(scale if rule.multiplier == "fan_in" else 1.0) * m**rule.multiplier_power,
            weight_lr_multiplier=m**family_power,
            bias_lr_multiplier=m**bias_power,
        ))
    return tuple(plans)
