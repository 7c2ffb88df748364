"""Isotropic Gaussian linear regression: x ~ N(0, I_p), y = x.beta + sigma*eps, |beta| = r.

The microcosm of double descent (Hastie, Montanari, Rosset & Tibshirani 2019).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["GaussianRegressionSpec", "make_gaussian_regression"]


class GaussianRegressionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["gaussian_regression"] = "gaussian_regression"
    n_train: int = Field(100, ge=1, le=10_000_000)
    n_test: int = Field(1000, ge=1, le=10_000_000)
    input_dim: int = Field(50, ge=1, le=65_536, description="p, the number of features")
    noise: float = Field(0.5, ge=0, description="sigma, standard deviation of label noise")
    signal_norm: float = Field(1.0, ge=0, description="r = |beta|")


def make_gaussian_regression(spec: GaussianRegressionSpec, seed: int) -> Task:
    """Draw beta uniformly on the sphere of radius r, then train and test sets.

    Shapes: x (N, p) float32, y (N, 1) float32; loss "half_sse". The test labels are
    noisy too, so test risk = excess risk + sigma^2 under the 0.5*(f-y)^2 loss x2.
    extras["beta"]: (p,) the true coefficients.
    """
    g = generator(seed, "gaussian_regression")
    p = spec.input_dim
    beta = torch.randn(p, generator=g, dtype=torch.float64)
    beta = beta / beta.norm() * spec.signal_norm

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, p, generator=g, dtype=torch.float64)
        y = x @ beta + spec.noise * torch.randn(n, generator=g, dtype=torch.float64)
        return x.float(), y.float().unsqueeze(1)

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "half_sse", 1, {"beta": beta.float()})
