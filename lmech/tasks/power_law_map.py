"""A linear teacher with power-law singular values: the scaling-law microcosm for a trained network.

One job: draw Gaussian inputs and noisy outputs of a fixed linear map whose
singular values decay as k^-decay, so that a network whose width caps the rank
it can express (a deep linear network, or an MLP) has a model-size bottleneck
(the modes beyond its width) and a data bottleneck (the weak modes it has not
yet learned). It ignores nonlinear targets (see ``teacher_student.py``).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["PowerLawMapSpec", "make_power_law_map"]


class PowerLawMapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["power_law_map"] = "power_law_map"
    n_train: int = Field(4096, ge=1, le=10_000_000, description="training examples (online runs: batch x steps)")
    n_test: int = Field(4096, ge=1, le=10_000_000)
    input_dim: int = Field(64, ge=1, le=65_536)
    output_dim: int = Field(64, ge=1, le=65_536)
    decay: float = Field(1.0, gt=0, description="singular values s_k = k^-decay, k = 1..min(input_dim, output_dim)")
    noise: float = Field(0.0, ge=0, description="standard deviation of label noise per output")


def make_power_law_map(spec: PowerLawMapSpec, seed: int) -> Task:
    """x ~ N(0, I_d); y = M x + noise * N(0, I_C), M = U diag(k^-decay) V^T with Haar U, V.

    Shapes: x (n, d), y (n, C) float32; loss "half_sse". extras: "singular_values"
    (R,) float64 with R = min(d, C); "target_map" (C, d) float64. With
    E|x|^2 = d and x whitened, the population MSE of a predictor W (C, d) is
    ||W - M||_F^2 + C noise^2 (per example, summed over outputs).
    """
    g = generator(seed, "power_law_map")
    d, c = spec.input_dim, spec.output_dim
    r = min(d, c)

    def orthonormal(n: int) -> torch.Tensor:
        q, upper = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        return (q * torch.sign(torch.diagonal(upper)))[:, :r]

    s = torch.arange(1, r + 1, dtype=torch.float64) ** -spec.decay
    target = orthonormal(c) @ torch.diag(s) @ orthonormal(d).T

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = x @ target.T + spec.noise * torch.randn(n, c, generator=g, dtype=torch.float64)
        return x.float(), y.float()

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "half_sse", c, {"singular_values": s, "target_map": target})
