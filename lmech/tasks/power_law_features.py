"""Random features of power-law latent data (Maloney, Roberts & Sully 2022): the solvable scaling-law model.

One job: draw the training and test sets of linear random-feature regression,
keeping the latent spectrum, the projection and the teacher so that an
observable can compute population losses exactly. It ignores nonlinear
features and anisotropic teachers (see ``lmech/theory/random_features.py``).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["PowerLawFeaturesSpec", "make_power_law_features"]


class PowerLawFeaturesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["power_law_features"] = "power_law_features"
    n_train: int = Field(64, ge=1, le=10_000_000, description="P, training examples (data size)")
    n_test: int = Field(16, ge=1, le=10_000_000, description="test examples (population losses are exact; see extras)")
    n_features: int = Field(32, ge=1, le=65_536, description="N, random features (model size)")
    latent_dim: int = Field(1000, ge=1, le=65_536, description="M, latent dimensions")
    alpha: float = Field(1.0, gt=0, description="spectrum lambda_k = k^-(1+alpha)")
    noise: float = Field(0.0, ge=0, description="standard deviation of label noise")


def make_power_law_features(spec: PowerLawFeaturesSpec, seed: int) -> Task:
    """Latent x ~ N(0, diag(k^-(1+alpha))), features phi = U x, targets y = w.x + noise.

    Shapes: x_train (P, N) float32 features phi, y_train (P, 1) float32; the
    test set likewise with n_test rows; loss "half_sse". ``U`` is (N, M) with
    i.i.d. N(0, 1/M) entries, ``w`` (M,) ~ N(0, I_M) (isotropic latent teacher,
    the convention of ``theory.random_features``).

    extras (float64): "spectrum" (M,) lambda_k; "projection" (N, M) U;
    "teacher" (M,) w; "features_train" (P, N) and "targets_train" (P,) the
    training set before rounding to float32 (for exact min-norm solutions).

    Algorithm: when the examples outnumber the features (n_train + n_test >
    N + 1) the rows (phi, y_clean) are drawn directly from their joint Gaussian
    law, covariance [U; w^T] Lambda [U; w^T]^T ((N+1) x (N+1), via eigh) --
    equal in distribution to drawing latent x and projecting, at cost
    O(M N^2 + P N^2) instead of O(P M N); otherwise latent x are drawn and
    projected. Memory O(N M).

    Failure modes: the float32 training tensors lose precision for modes with
    lambda_k below ~1e-7 relative to lambda_1; use the float64 extras.
    """
    g = generator(seed, "power_law_features")
    m, n_feat = spec.latent_dim, spec.n_features
    lam = torch.arange(1, m + 1, dtype=torch.float64) ** -(1.0 + spec.alpha)
    u = torch.randn(n_feat, m, generator=g, dtype=torch.float64) / m**0.5
    w = torch.randn(m, generator=g, dtype=torch.float64)
    rows = spec.n_train + spec.n_test
    if rows > n_feat + 1:
        readout = torch.cat([u, w[None, :]])  # (N+1, M)
        cov = (readout * lam) @ readout.T
        evals, evecs = torch.linalg.eigh(cov)
        root = evecs * evals.clamp(min=0).sqrt()  # (N+1, N+1): cov = root root^T
        joint = torch.randn(rows, n_feat + 1, generator=g, dtype=torch.float64) @ root.T
        phi, y = joint[:, :n_feat], joint[:, n_feat]
    else:
        z = torch.randn(rows, m, generator=g, dtype=torch.float64) * lam.sqrt()
        phi, y = z @ u.T, z @ w
    y = y + spec.noise * torch.randn(rows, generator=g, dtype=torch.float64)
    p = spec.n_train
    extras = {"spectrum": lam, "projection": u, "teacher": w,
              "features_train": phi[:p].clone(), "targets_train": y[:p].clone()}
    return Task(phi[:p].float(), y[:p, None].float(), phi[p:].float(), y[p:, None].float(), "half_sse", 1, extras)
