"""Shared pieces of the nn.Module model families: the parameterization table resolved for one
weight, and dense / layer-norm layers whose init std and forward multiplier are explicit numbers.

One job: turn (parameterization, role, fan_in, width ratio m) into an init std, a forward
multiplier and SGD / Adam learning-rate multipliers, using the same table as the MLP family
(`parameterization.PARAMETERIZATIONS`), and draw weights from a seeded generator. It ignores
architectures (each family file wires these layers) and optimizers (the trainer applies the
learning-rate multipliers).

Roles:
- "input": a weight whose fan_in does not grow with width (embeddings, with fan_in 1 for a
  one-hot token; the first dense or conv layer);
- "hidden": a weight both of whose dimensions grow with width;
- "output": the readout (fan_out fixed, fan_in grows with width);
- a *vector* parameter (bias, layer-norm gain or shift, a recurrence's decay) uses the bias
  rule of its role: hidden and input vectors grow with width, the readout's bias does not.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from lmech.errors import InputError
from lmech.models.parameterization import PARAMETERIZATIONS

__all__ = ["Role", "width_ratio", "init_std_and_multiplier", "lr_multiplier", "draw",
           "Dense", "LayerNorm", "check_optimizer_family"]

Role = Literal["input", "hidden", "output"]


def width_ratio(width: int, base_width: int) -> float:
    """m = width / base_width: the exponent base of every muP rule (m = 1: muP equals SP)."""
    return width / base_width


def init_std_and_multiplier(parameterization: str, role: Role, fan_in: int, m: float,
                            gain: float = 1.0) -> tuple[float, float]:
    """Init std and forward multiplier of one weight (z = multiplier * x @ W + b).

    SP and muP draw std gain / sqrt(fan_in) ("fan_in"); NTK draws std 1 and multiplies the
    forward pass by gain / sqrt(fan_in). The readout gets gain 1 and, under muP, the
    multiplier 1/m (TP V Table 8 form, as in `parameterization.py`).
    """
    rule = PARAMETERIZATIONS[parameterization][role]
    scale = (1.0 if role == "output" else gain) / math.sqrt(fan_in)
    init_std = scale if rule.init_std == "fan_in" else 1.0
    multiplier = (scale if rule.multiplier == "fan_in" else 1.0) * m**rule.multiplier_power
    return init_std, multiplier


def check_optimizer_family(optimizer_family: str) -> Literal["sgd", "adam"]:
    if optimizer_family not in ("sgd", "adam"):
        raise InputError(f"optimizer family must be 'sgd' or 'adam', got '{optimizer_family}'")
    return optimizer_family  # type: ignore[return-value]


def lr_multiplier(parameterization: str, role: Role, m: float, optimizer_family: str,
                  vector: bool) -> float:
    """Learning-rate multiplier m^power of one parameter; `vector` selects the bias rule."""
    rule = PARAMETERIZATIONS[parameterization][role]
    if check_optimizer_family(optimizer_family) == "sgd":
        power = rule.bias_sgd_lr_power if vector else rule.sgd_lr_power
    else:
        power = rule.bias_adam_lr_power if vector else rule.adam_lr_power
    return m**power


def role_lr_multipliers(parameterization: str, m: float, module: torch.nn.Module, optimizer_family: str,
                        role_of) -> dict[str, float]:
    """{parameter name: lr_multiplier(...)} for every parameter of `module`, whose (role, vector)
    `role_of(name)` gives (it raises InputError for a name it does not know)."""
    out = {}
    for name, _ in module.named_parameters():
        role, vector = role_of(name)
        out[name] = lr_multiplier(parameterization, role, m, optimizer_family, vector)
    return out


def draw(shape: tuple[int, ...], std: float, generator: torch.Generator) -> Tensor:
    """float32 N(0, std^2) entries from `generator`; exact zeros when std is 0."""
    if std == 0.0:
        return torch.zeros(shape)
    return torch.randn(shape, generator=generator) * std


class Dense(torch.nn.Module):
    """z = multiplier * x @ weight^T + bias; weight (fan_out, fan_in) as in torch.nn.Linear.

    Unlike nn.Linear, construction draws from the given generator (never the global RNG) with
    the given std; the bias starts at zero.
    """

    def __init__(self, fan_in: int, fan_out: int, *, init_std: float, multiplier: float,
                 bias: bool, generator: torch.Generator):
        super().__init__()
        self.weight = torch.nn.Parameter(draw((fan_out, fan_in), init_std, generator))
        self.bias = torch.nn.Parameter(torch.zeros(fan_out)) if bias else None
        self.multiplier = float(multiplier)

    def forward(self, x: Float[Tensor, "*B D"]) -> Float[Tensor, "*B C"]:
        z = F.linear(x, self.weight)
        if self.multiplier != 1.0:
            z = z * self.multiplier
        if self.bias is not None:
            z = z + self.bias
        return z


class LayerNorm(torch.nn.Module):
    """Layer norm over the last axis (eps 1e-5) with gain 1 and optional shift 0 at init."""

    def __init__(self, width: int, bias: bool):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(width))
        self.bias = torch.nn.Parameter(torch.zeros(width)) if bias else None

    def forward(self, x: Float[Tensor, "*B H"]) -> Float[Tensor, "*B H"]:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)
