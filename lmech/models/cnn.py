"""Small convolutional network (1-D or 2-D) as an nn.Module, with SP / NTK / muP as data.

One job: conv -> activation -> pool, `depth` times at `width` channels, then a linear readout
of the flattened features. It ignores optimizers (see `cnn_lr_multipliers`) and data.

Inputs: 1-D sequences (N, L) or (N, C_in, L), e.g. mnist1d (N, 40); 2-D images (N, C_in, S1, S2),
(N, S1, S2), or flattened square images (N, S*S), e.g. the 8x8 digits as (N, 64), reshaped
inside forward. Convolutions use "same" padding (odd kernel); pooling (window = stride =
pool_size) follows a conv only while every spatial size is at least pool_size, decided once
from the input shape.

Parameterization (m = width / base_width; fan_in = C_in * kernel^dim for a conv and
width * spatial size for the readout; g = sqrt 2 for ReLU/GELU, else 1; weights drawn
N(0, std^2) from `lmech.seeding.generator(seed, "init/<name>")`, biases 0):

| parameter     | SP              | NTK                      | muP                           |
|---------------|-----------------|--------------------------|-------------------------------|
| first conv    | std g/sqrt(fi)  | std 1, x g/sqrt(fi)      | std g/sqrt(fi); SGD lr x m    |
| hidden convs  | std g/sqrt(fi)  | std 1, x g/sqrt(fi)      | std g/sqrt(fi); Adam lr / m   |
| readout       | std 1/sqrt(fi)  | std 1, x 1/sqrt(fi)      | std 0, x 1/m; SGD lr x m      |
| conv biases   | 0               | 0                        | SGD lr x m                    |

Source: Yang et al. 2022 (Tensor Programs V), Table 3 in the Table 8 multiplier form, as the
`mup` package treats conv weights (channels are the width; kernel and spatial sizes are
fixed); zero readout under muP by default (`zero_init_readout` None), as the `mup` README
advises. NTK: Jacot et al. 2018 eq. (1) per layer. `init_scale` multiplies every initial weight.

Failure modes: an even kernel has no symmetric "same" padding (rejected); max pooling's
subgradient picks one element per window, so its second derivative is zero almost everywhere.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from lmech.errors import InputError
from lmech.models._layers import Dense, draw, init_std_and_multiplier, lr_multiplier, width_ratio
from lmech.models.parameterization import activate, activation_gain
from lmech.seeding import generator

__all__ = ["CNNSpec", "CNN", "build_cnn", "cnn_lr_multipliers"]


class CNNSpec(BaseModel):
    """A stack of same-padded convolutions with pooling and a linear readout."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["cnn"] = "cnn"
    dim: Literal[1, 2] = Field(1, description="1: sequences (N, [C,] L); 2: images (N, [C,] S1, S2) or (N, S*S)")
    width: int = Field(32, ge=1, le=16_384, description="H, channels of every conv layer")
    depth: int = Field(2, ge=1, le=1024, description="number of conv layers")
    kernel_size: int = Field(3, ge=1, le=1023, description="odd kernel length (per spatial axis)")
    pool: Literal["max", "avg", "none"] = "max"
    pool_size: int = Field(2, ge=2, le=1024)
    activation: Literal["relu", "tanh", "gelu", "linear"] = "relu"
    bias: bool = True
    parameterization: Literal["sp", "ntk", "mup"] = "sp"
    base_width: int = Field(32, ge=1, le=16_384, description="width at which muP equals SP")
    zero_init_readout: bool | None = Field(None, description="None: True under muP, else False")
    output_multiplier: float = Field(1.0, description="multiplies the network output")

    @model_validator(mode="after")
    def _odd_kernel(self):
        if self.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size must be odd for 'same' padding, got {self.kernel_size}")
        return self


def _layout(dim: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C_in, *spatial) from the per-example input shape."""
    shape = tuple(int(s) for s in input_shape)
    if dim == 1 and len(shape) in (1, 2):
        return shape if len(shape) == 2 else (1, *shape)
    if dim == 2 and len(shape) in (2, 3):
        return shape if len(shape) == 3 else (1, *shape)
    if dim == 2 and len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0]:
            return (1, side, side)
        raise InputError(f"a 2-D cnn needs square flattened images; {shape[0]} features are not a square")
    raise InputError(f"a {dim}-D cnn cannot take inputs of shape {shape}")


class Conv(torch.nn.Module):
    """z = multiplier * conv(x, weight) + bias with 'same' padding; weight (C_out, C_in, *kernel)."""

    def __init__(self, dim: int, c_in: int, c_out: int, kernel: int, *, init_std: float,
                 multiplier: float, bias: bool, generator: torch.Generator):
        super().__init__()
        self.weight = torch.nn.Parameter(draw((c_out, c_in, *([kernel] * dim)), init_std, generator))
        self.bias = torch.nn.Parameter(torch.zeros(c_out)) if bias else None
        self.multiplier = float(multiplier)
        self.dim = dim

    def forward(self, x: Float[Tensor, "N C *S"]) -> Float[Tensor, "N H *S"]:
        conv = F.conv1d if self.dim == 1 else F.conv2d
        z = conv(x, self.weight, padding=self.weight.shape[-1] // 2)
        if self.multiplier != 1.0:
            z = z * self.multiplier
        if self.bias is not None:
            z = z + self.bias.reshape(-1, *([1] * self.dim))
        return z




class CNN(torch.nn.Module):
    """Inputs (N, *input_shape) -> outputs (N, C) float32; see the module docstring for the table.

    `output_multiplier` is a 0-dim non-persistent buffer (per member under stack_module_state).
    """

    def __init__(self, spec: CNNSpec, input_shape: tuple[int, ...], output_dim: int, seed: int,
                 init_scale: float = 1.0):
        super().__init__()
        self.layout = _layout(spec.dim, input_shape)
        m = width_ratio(spec.width, spec.base_width)
        gain = activation_gain(spec.activation)
        channels, spatial = self.layout[0], list(self.layout[1:])
        convs, pools = [], []
        for index in range(spec.depth):
            fan_in = channels * spec.kernel_size**spec.dim
            role = "input" if index == 0 else "hidden"
            std, multiplier = init_std_and_multiplier(spec.parameterization, role, fan_in, m, gain)
            convs.append(Conv(spec.dim, channels, spec.width, spec.kernel_size, init_std=std * init_scale,
                              multiplier=multiplier, bias=spec.bias,
                              generator=generator(seed, f"init/convs.{index}.weight")))
            pooled = spec.pool != "none" and min(spatial) >= spec.pool_size
            pools.append(pooled)
            if pooled:
                spatial = [s // spec.pool_size for s in spatial]
            channels = spec.width
        self.convs = torch.nn.ModuleList(convs)
        self.pool_after = tuple(pools)
        fan_in = channels * math.prod(spatial)
        zero = spec.parameterization == "mup" if spec.zero_init_readout is None else spec.zero_init_readout
        std, multiplier = init_std_and_multiplier(spec.parameterization, "output", fan_in, m)
        self.readout = Dense(fan_in, output_dim, init_std=0.0 if zero else std * init_scale,
                             multiplier=multiplier, bias=spec.bias, generator=generator(seed, "init/readout.weight"))
        self.activation = spec.activation
        self.pool = spec.pool
        self.pool_size = spec.pool_size
        self.register_buffer("output_multiplier", torch.tensor(float(spec.output_multiplier)),
                             persistent=False)

    def forward(self, x: Float[Tensor, "N *D"]) -> Float[Tensor, "N C"]:
        n = x.shape[0]
        h = x.reshape(n, *self.layout)
        dim = len(self.layout) - 1
        for conv, pooled in zip(self.convs, self.pool_after):
            h = activate(conv(h), self.activation)
            if pooled and self.pool == "max":
                h = (F.max_pool1d if dim == 1 else F.max_pool2d)(h, self.pool_size)
            elif pooled:
                h = (F.avg_pool1d if dim == 1 else F.avg_pool2d)(h, self.pool_size)
        return self.readout(h.reshape(n, -1)) * self.output_multiplier


def build_cnn(spec: CNNSpec, input_shape: tuple[int, ...], output_dim: int, vocab_size: int | None,
              seed: int, init_scale: float = 1.0) -> CNN:
    """A CNN for real inputs of shape (N, *input_shape); vocab_size must be None (no tokens)."""
    if vocab_size is not None:
        raise InputError("a cnn takes real-valued inputs, not tokens (the task has a vocabulary)")
    return CNN(spec, input_shape, output_dim, seed, init_scale)


def cnn_lr_multipliers(spec: CNNSpec, module: torch.nn.Module,
                       optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """{parameter name: learning-rate multiplier} for every parameter of a CNN built from `spec`."""
    m = width_ratio(spec.width, spec.base_width)
    out = {}
    for name, _ in module.named_parameters():
        parts = name.split(".")
        if parts[0] == "convs" and len(parts) == 3:
            role = "input" if parts[1] == "0" else "hidden"
        elif parts[0] == "readout" and len(parts) == 2:
            role = "output"
        else:
            raise InputError(f"'{name}' is not a parameter of an lmech CNN")
        out[name] = lr_multiplier(spec.parameterization, role, m, optimizer_family, parts[-1] == "bias")
    return out
