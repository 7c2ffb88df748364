"""Gaussian linear regression with a decaying covariance spectrum: the microcosm of benign overfitting.

One job: draw x ~ N(0, diag(lambda)) with lambda_k = exp(-(k-1)/decay) + tail_trace/p
(a fast-decaying head plus an isotropic tail of total variance tail_trace), and
y = x.beta + noise with beta = signal_norm * e_1. It ignores non-diagonal
covariances (rotating x changes nothing for rotation-invariant learners such
as min-norm least squares).

Source: the finite-dimensional example of Bartlett, Long, Lugosi & Tsigler
(2020), "Benign overfitting in linear regression", Theorem 6.
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["SpectralRegressionSpec", "make_spectral_regression"]


class SpectralRegressionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["spectral_regression"] = "spectral_regression"
    n_train: int = Field(64, ge=1, le=10_000_000)
    n_test: int = Field(64, ge=1, le=10_000_000)
    input_dim: int = Field(512, ge=1, le=1_048_576, description="p, the number of features")
    decay: float = Field(1.0, gt=0, description="tau: head eigenvalues exp(-(k-1)/tau)")
    tail_trace: float = Field(1.0, gt=0, description="total variance of the isotropic tail (eps = tail_trace / p)")
    noise: float = Field(1.0, ge=0, description="sigma, standard deviation of label noise")
    signal_norm: float = Field(1.0, ge=0, description="beta = signal_norm * e_1 (on the top eigenvector)")


def make_spectral_regression(spec: SpectralRegressionSpec, seed: int) -> Task:
    """Train and test sets x (N, p) float32, y (N, 1) float32 (noisy); loss "half_sse".

    extras (float64): "spectrum" (p,) lambda_k, non-increasing; "beta" (p,) the
    true coefficients. Excess risk of a linear predictor b is
    sum_k lambda_k (b_k - beta_k)^2, exactly (no test set needed).
    Cost O((n_train + n_test) p) Gaussian draws; memory 4 (n_train + n_test) p bytes.
    """
    g = generator(seed, "spectral_regression")
    p = spec.input_dim
    k = torch.arange(p, dtype=torch.float64)
    lam = torch.exp(-k / spec.decay) + spec.tail_trace / p
    beta = torch.zeros(p, dtype=torch.float64)
    beta[0] = spec.signal_norm
    scale = lam.sqrt()

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, p, generator=g, dtype=torch.float64) * scale
        y = x @ beta + spec.noise * torch.randn(n, generator=g, dtype=torch.float64)
        return x.float(), y.float().unsqueeze(1)

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "half_sse", 1, {"spectrum": lam, "beta": beta})
