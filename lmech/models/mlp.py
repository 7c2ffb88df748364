"""Multilayer perceptrons with stacked parameters: K independent models evaluated in one pass.

Parameters live in a dict of tensors with a leading ensemble axis K:
`W{l}`: (K, fan_in, fan_out) and `b{l}`: (K, 1, fan_out). One model is K = 1.
The forward pass is batched matmul, so K tiny models cost about one kernel
launch per layer. A deep linear network is this MLP with the identity
activation and no biases. This module ignores optimizers, data and gradients (the
trainer's hand-derived backward for shared inputs is `lmech.train.mlp_backward`).
"""

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from lmech.models.parameterization import LayerPlan, activate, resolve_layers
from lmech.seeding import generator

__all__ = ["ModelSpec", "ModelPlan", "plan_model", "init_params", "forward", "MemberModule"]

Activation = Literal["relu", "tanh", "gelu", "linear", "square"]


class ModelSpec(BaseModel):
    """An MLP or deep linear network; the scalars init_scale and output_multiplier may vary inside an ensemble."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["mlp", "deep_linear"] = "mlp"
    width: int = Field(64, ge=1, le=16_384, description="H, hidden units per layer")
    depth: int = Field(2, ge=0, le=1024, description="number of hidden layers (0: a linear model)")
    activation: Activation = "relu"
    bias: bool = True
    parameterization: Literal["sp", "ntk", "mup"] = "sp"
    base_width: int = Field(64, ge=1, le=16_384, description="width at which muP equals SP")
    init_scale: float = Field(1.0, ge=0, description="multiplies every initial weight")
    output_multiplier: float = Field(1.0, description="multiplies the network output")
    zero_init_readout: bool = False

    @model_validator(mode="after")
    def _deep_linear_is_linear(self):
        if self.kind == "deep_linear" and (self.activation != "linear" or self.bias):
            raise ValueError("model.kind 'deep_linear' needs activation 'linear' and bias false")
        return self


@dataclass(frozen=True)
class ModelPlan:
    """Everything fixed about an architecture once sizes are known (shared by all K members)."""

    layers: tuple[LayerPlan, ...]
    activation: str
    bias: bool

    @property
    def parameter_names(self) -> tuple[str, ...]:
        names = []
        for index in range(len(self.layers)):
            names.append(f"W{index}")
            if self.bias:
                names.append(f"b{index}")
        return tuple(names)

    def lr_multipliers(self) -> dict[str, float]:
        out = {}
        for index, layer in enumerate(self.layers):
            out[f"W{index}"] = layer.weight_lr_multiplier
            if self.bias:
                out[f"b{index}"] = layer.bias_lr_multiplier
        return out


def plan_model(spec: ModelSpec, input_dim: int, output_dim: int, optimizer_family: str) -> ModelPlan:
    """Resolve sizes and the parameterization; optimizer_family is "sgd" or "adam"."""
    sizes = [input_dim] + [spec.width] * spec.depth + [output_dim]
    family = "sgd" if optimizer_family == "sgd" else "adam"
    layers = resolve_layers(spec.parameterization, sizes, spec.activation, family, spec.base_width)
    return ModelPlan(layers, spec.activation, spec.bias)


def init_params(plan: ModelPlan, seeds: list[int], init_scales: list[float],
                zero_init_readout: bool = False) -> dict[str, Tensor]:
    """Initial parameters for K members: member k draws from its own seed, so it is the same
    whether trained alone or inside any ensemble.

    Returns: {"W{l}": (K, fan_in, fan_out), "b{l}": (K, 1, fan_out)} float32; biases start at 0.
    """
    k_members = len(seeds)
    params = {}
    for index, layer in enumerate(plan.layers):
        weights = torch.empty(k_members, layer.fan_in, layer.fan_out)
        for k, seed in enumerate(seeds):
            g = generator(seed, f"init/W{index}")
            weights[k] = torch.randn(layer.fan_in, layer.fan_out, generator=g)
        scale = torch.tensor(init_scales, dtype=torch.float32).view(-1, 1, 1) * layer.init_std
        if zero_init_readout and index == len(plan.layers) - 1:
            scale = scale * 0.0
        params[f"W{index}"] = weights * scale
        if plan.bias:
            params[f"b{index}"] = torch.zeros(k_members, 1, layer.fan_out)
    return params




def forward(
    plan: ModelPlan,
    params: dict[str, Tensor],
    x: Float[Tensor, "N D"] | Float[Tensor, "K N D"],
    output_multiplier: Float[Tensor, " K"] | None = None,
) -> Float[Tensor, "K N C"]:
    """Outputs of all K members. `x` is shared (N, D) or per member (K, N, D).

    Algorithm: per layer z = multiplier * h @ W + b by batched matmul; cost 2*K*N*sum(fan_in*fan_out) FLOPs.
    """
    h = x
    last = len(plan.layers) - 1
    for index, layer in enumerate(plan.layers):
        weight = params[f"W{index}"]
        if h.dim() == 3 and plan.bias and layer.multiplier == 1.0:
            z = torch.baddbmm(params[f"b{index}"], h, weight)  # fused bias add
        else:
            z = torch.matmul(h, weight)  # (N, D) @ (K, D, H) or (K, N, D) @ (K, D, H) -> (K, N, H)
            if layer.multiplier != 1.0:
                z = z * layer.multiplier
            if plan.bias:
                z = z + params[f"b{index}"]
        h = z if index == last else activate(z, plan.activation)
    if output_multiplier is not None:
        h = h * output_multiplier.view(-1, 1, 1)
    return h


class MemberModule(torch.nn.Module):
    """One ensemble member as an ordinary nn.Module (a copy of its parameters), for instruments
    that take any torch model. Input (N, D) -> output (N, C)."""

    def __init__(self, plan: ModelPlan, params: dict[str, Tensor], member: int,
                 output_multiplier: float = 1.0):
        super().__init__()
        self.plan = plan
        self.output_multiplier = float(output_multiplier)
        # biases as (fan_out,) vectors, as torch.nn.Linear has them (the stack keeps (K, 1, fan_out))
        self.weights = torch.nn.ParameterDict(
            {name: torch.nn.Parameter(value[member].detach().clone().reshape(-1) if name.startswith("b")
                                      else value[member].detach().clone()) for name, value in params.items()}
        )

    def forward(self, x: Tensor) -> Tensor:
        stacked = {name: value.view(1, 1, -1) if name.startswith("b") else value.unsqueeze(0)
                   for name, value in self.weights.items()}
        out = forward(self.plan, stacked, x)[0]
        return out * self.output_multiplier if self.output_multiplier != 1.0 else out

