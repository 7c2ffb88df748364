"""Residual MLP with a branch multiplier (and Depth-muP's 1/sqrt(depth)) as an nn.Module, with
SP / NTK / muP in width as data.

One job: h_0 = W_in x;  h_l = h_(l-1) + alpha * branch_l(h_(l-1)) for l = 1..L, where a branch
of k = block_depth layers is W_k phi( ... W_1 phi(h)) (k = 1 is the block of TP VI);
output = readout(h_L). It ignores optimizers (see `resmlp_lr_multipliers`) and data.

Branch multiplier: alpha = branch_multiplier, or with depth_scaling "depth_mup"
alpha = branch_multiplier / sqrt(L / base_depth). Then each block adds alpha^2 times its input's
second moment at init (for ReLU with gain sqrt 2, linear, abs; exactly in expectation), so
E|h_L|^2 = (1 + alpha^2)^L E|h_0|^2 stays below e^(branch_multiplier^2 * base_depth) for every L.

Width parameterization (m = width / base_width; g = sqrt 2 for ReLU/GELU, else 1; weights
drawn N(0, std^2) from `lmech.seeding.generator(seed, "init/<name>")`, biases 0):

| parameter        | SP              | NTK                  | muP                                  |
|------------------|-----------------|----------------------|--------------------------------------|
| input (D -> H)   | std 1/sqrt(D)   | std 1, x 1/sqrt(D)   | std 1/sqrt(D); SGD lr x m            |
| block weights    | std g/sqrt(H)   | std 1, x g/sqrt(H)   | std g/sqrt(H); Adam lr / m           |
| readout (H -> C) | std 1/sqrt(H)   | std 1, x 1/sqrt(H)   | std 0, x 1/m; SGD lr x m             |
| width biases     | 0               | 0                    | SGD lr x m                           |

Depth (any width parameterization) under "depth_mup": block parameters' Adam learning rates
are multiplied by (L / base_depth)^(-1/2); SGD learning rates are unchanged.

Source: width: Yang et al. 2022 (Tensor Programs V) Table 3 in the Table 8 multiplier form
(as `parameterization.py` and the `mup` package); zero readout under muP by default. Depth:
Yang, Yu, Zhu & Hayou 2023 (Tensor Programs VI, arXiv 2310.02244), Depth-muP: block
multiplier a / sqrt(L); learning rate eta for SGD and eta / sqrt(L) for Adam; Bordelon et al.
2023 (arXiv 2309.16620) use the same 1/sqrt(L) branch scaling with muP. TP VI derives it for
k = 1; for k >= 2 it is a heuristic (TP VI's own caveat about deeper blocks).

Failure modes: inputs must be (N, D) real features; GELU and tanh do not satisfy the
(1 + alpha^2) variance recursion exactly (ReLU, linear and abs do).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from lmech.errors import InputError
from lmech.models._layers import Dense, init_std_and_multiplier, lr_multiplier, width_ratio
from lmech.models.parameterization import activate, activation_gain
from lmech.seeding import generator

__all__ = ["ResMLPSpec", "ResMLP", "build_resmlp", "resmlp_lr_multipliers"]


class ResMLPSpec(BaseModel):
    """A residual MLP: input layer, `depth` residual blocks, linear readout."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["resmlp"] = "resmlp"
    width: int = Field(64, ge=1, le=16_384, description="H, the residual-stream width")
    depth: int = Field(4, ge=0, le=1024, description="L, number of residual blocks")
    block_depth: int = Field(1, ge=1, le=64, description="k, dense layers per branch")
    activation: Literal["relu", "tanh", "gelu", "linear", "abs"] = "relu"
    bias: bool = True
    parameterization: Literal["sp", "ntk", "mup"] = "sp"
    base_width: int = Field(64, ge=1, le=16_384, description="width at which muP equals SP")
    branch_multiplier: float = Field(1.0, description="a in alpha = a or a / sqrt(L / base_depth)")
    depth_scaling: Literal["none", "depth_mup"] = "none"
    base_depth: int = Field(1, ge=1, le=1024, description="depth at which depth_mup changes nothing")
    zero_init_readout: bool | None = Field(None, description="None: True under muP, else False")
    output_multiplier: float = Field(1.0, description="multiplies the network output")

    def branch_scale(self) -> float:
        """alpha, the multiplier of every residual branch."""
        if self.depth_scaling == "depth_mup" and self.depth > 0:
            return self.branch_multiplier / math.sqrt(self.depth / self.base_depth)
        return self.branch_multiplier

    def block_adam_lr_factor(self) -> float:
        """Depth factor of block parameters' Adam learning rates: (L / base_depth)^(-1/2) or 1."""
        if self.depth_scaling == "depth_mup" and self.depth > 0:
            return (self.depth / self.base_depth) ** -0.5
        return 1.0




class Branch(torch.nn.Module):
    """W_k phi( ... W_1 phi(h)): (N, H) -> (N, H)."""

    def __init__(self, spec: ResMLPSpec, index: int, seed: int, init_scale: float):
        super().__init__()
        m = width_ratio(spec.width, spec.base_width)
        std, multiplier = init_std_and_multiplier(spec.parameterization, "hidden", spec.width, m,
                                                  activation_gain(spec.activation))
        self.layers = torch.nn.ModuleList(
            Dense(spec.width, spec.width, init_std=std * init_scale, multiplier=multiplier, bias=spec.bias,
                  generator=generator(seed, f"init/blocks.{index}.layers.{j}.weight"))
            for j in range(spec.block_depth))
        self.activation = spec.activation

    def forward(self, h: Float[Tensor, "N H"]) -> Float[Tensor, "N H"]:
        for layer in self.layers:
            h = layer(activate(h, self.activation))
        return h


class ResMLP(torch.nn.Module):
    """Features (N, D) -> outputs (N, C) float32; see the module docstring for the tables.

    `branch_scale` (alpha) is a Python float fixed by the spec; `output_multiplier` is a 0-dim
    non-persistent buffer (per member under stack_module_state).
    """

    def __init__(self, spec: ResMLPSpec, input_dim: int, output_dim: int, seed: int,
                 init_scale: float = 1.0):
        super().__init__()
        m = width_ratio(spec.width, spec.base_width)
        std, multiplier = init_std_and_multiplier(spec.parameterization, "input", input_dim, m)
        self.input = Dense(input_dim, spec.width, init_std=std * init_scale, multiplier=multiplier,
                           bias=spec.bias, generator=generator(seed, "init/input.weight"))
        self.blocks = torch.nn.ModuleList(Branch(spec, index, seed, init_scale) for index in range(spec.depth))
        zero = spec.parameterization == "mup" if spec.zero_init_readout is None else spec.zero_init_readout
        std, multiplier = init_std_and_multiplier(spec.parameterization, "output", spec.width, m)
        self.readout = Dense(spec.width, output_dim, init_std=0.0 if zero else std * init_scale,
                             multiplier=multiplier, bias=spec.bias, generator=generator(seed, "init/readout.weight"))
        self.branch_scale = spec.branch_scale()
        self.register_buffer("output_multiplier", torch.tensor(float(spec.output_multiplier)),
                             persistent=False)

    def forward(self, x: Float[Tensor, "N D"]) -> Float[Tensor, "N C"]:
        h = self.input(x)
        for block in self.blocks:
            h = h + self.branch_scale * block(h)
        return self.readout(h) * self.output_multiplier


def build_resmlp(spec: ResMLPSpec, input_shape: tuple[int, ...], output_dim: int,
                 vocab_size: int | None, seed: int, init_scale: float = 1.0) -> ResMLP:
    """A ResMLP for real features of shape (N, D); input_shape must be (D,) and vocab_size None."""
    if len(input_shape) != 1 or vocab_size is not None:
        what = "tokens" if vocab_size is not None else f"inputs of shape {tuple(input_shape)}"
        raise InputError(f"a resmlp takes real features (N, D), not {what}")
    return ResMLP(spec, int(input_shape[0]), output_dim, seed, init_scale)


def resmlp_lr_multipliers(spec: ResMLPSpec, module: torch.nn.Module,
                          optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """{parameter name: learning-rate multiplier}: the width table times the depth factor."""
    m = width_ratio(spec.width, spec.base_width)
    depth = spec.block_adam_lr_factor() if optimizer_family == "adam" else 1.0
    out = {}
    for name, _ in module.named_parameters():
        parts = name.split(".")
        if parts[0] == "input" and len(parts) == 2:
            role, factor = "input", 1.0
        elif parts[0] == "readout" and len(parts) == 2:
            role, factor = "output", 1.0
        elif parts[0] == "blocks" and len(parts) == 5 and parts[2] == "layers":
            role, factor = "hidden", depth
        else:
            raise InputError(f"'{name}' is not a parameter of an lmech ResMLP")
        out[name] = factor * lr_multiplier(spec.parameterization, role, m, optimizer_family, parts[-1] == "bias")
    return out
