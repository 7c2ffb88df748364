"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

One job: a smoothed estimate of the whole Hessian spectrum, phi(t) = (1/P) sum_i
delta(t - lambda_i), plus the raw quadrature nodes/weights and spectral moments.
It ignores single eigenvalues to high accuracy (see `sharpness.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch
from lmech.instruments._hvp import make_hvp
from lmech.instruments._json import JsonResult
from lmech.instruments._lanczos import lanczos
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["SpectralDensity", "hessian_spectral_density"]


@dataclass(frozen=True)
class SpectralDensity(JsonResult):
    """SLQ estimate of the Hessian spectral density.

    Attributes:
        grid: (G,) float64 eigenvalue axis (loss units per parameter unit^2).
        density: (G,) float64, Gaussian-broadened density; integrates to ~1 over grid.
        nodes: (V, M) float64 Ritz values per probe (padded with 0 where a
            probe's Krylov space closed early).
        weights: (V, M) float64 quadrature weights per probe (first components
            of the Ritz vectors squared; each row sums to 1; padding has weight 0).
        sigma: Gaussian broadening standard deviation (eigenvalue units).
        hvp_count: HVPs used (sum of Lanczos steps over probes).
    """

    grid: Float[Tensor, " G"]
    density: Float[Tensor, " G"]
    nodes: Float[Tensor, "V M"]
    weights: Float[Tensor, "V M"]
    sigma: float
    hvp_count: int

    def moment(self, order: int) -> tuple[float, float]:
        """(1/P) tr(H^order) estimate and its standard error over probes.

        Gauss quadrature with M nodes is exact for polynomials of degree
        <= 2M - 1, so for such orders the only error is probe variance.
        """
        per_probe = (self.weights * self.nodes.pow(order)).sum(dim=1)
        se = float(per_probe.std() / len(per_probe) ** 0.5) if len(per_probe) > 1 else float("nan")
        return float(per_probe.mean()), se

    def to_json(self) -> dict[str, Any]:
        """Fields plus `moments`: [[estimate, standard error] for orders 1..4]."""
        out = super().to_json()
        out["moments"] = [list(self.moment(k)) for k in range(1, 5)]
        return out


@measures_model
def hessian_spectral_density(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                             batch: Batch, *, num_probes: int = 4,
                             lanczos_steps: int = 80, sigma: float | None = None,
                             sigma_rel: float = 0.01, grid_size: int = 1000,
                             seed: int = 0) -> SpectralDensity:
    """Estimate the Hessian eigenvalue density by SLQ.

    Args:
        model, loss_fn, batch: as in `sharpness` (model never modified).
        num_probes: V, independent Gaussian start vectors (normalized).
        lanczos_steps: M, Krylov dimension per probe (capped at P).
        sigma: broadening std in eigenvalue units; default sigma_rel * (spread of nodes).
        sigma_rel: relative broadening used when sigma is None.
        grid_size: G, points of the grid spanning the nodes +- 5 sigma.
        seed: seeds the probes.

    Algorithm:
        For each probe v, M Lanczos steps (full reorthogonalization) give
        T = S diag(theta) S^T; nodes theta_i and weights S_{0i}^2 form a Gauss
        quadrature for v^T f(H) v. phi(t) = (1/V) sum_v sum_i w_i N(t; theta_i, sigma^2).
        Cost: V * M HVPs, memory an (M, P) basis.

    Source:
        Ghorbani, Krishnan & Xiao (2019) "An investigation into neural net
        optimization via Hessian eigenvalue density", section 2 and eq. (4);
        Lin, Saad & Yang (2016) "Approximating spectral densities of large matrices".

    Failure modes:
        Isolated outliers get weight ~1/P each and look like noise at small
        sigma; the bulk near 0 is smeared by sigma. Broadening shifts no mass but
        widens every peak. With few probes, moments have large standard errors.
    """
    if num_probes < 1 or lanczos_steps < 1 or grid_size < 2:
        raise ValueError("num_probes, lanczos_steps >= 1 and grid_size >= 2 required")
    op = make_hvp(model, loss_fn, batch)
    g = generator(seed, "slq-probes")
    m = min(lanczos_steps, op.layout.size)
    nodes = np.zeros((num_probes, m))
    weights = np.zeros((num_probes, m))
    hvps = 0
    for i in range(num_probes):
        v0 = torch.randn(op.layout.size, generator=g, dtype=torch.float64).to(op.theta)
        run = lanczos(op.matvec, v0, m)
        hvps += run.steps
        nodes[i, : run.steps] = run.ritz_values
        weights[i, : run.steps] = run.ritz_coeffs[0, :] ** 2
    used = nodes[weights > 0] if np.any(weights > 0) else nodes.ravel()
    lo, hi = float(used.min()), float(used.max())
    if sigma is None:
        sigma = sigma_rel * (hi - lo) if hi > lo else 1e-3 * max(abs(hi), 1.0)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, grid_size)
    z = (grid[:, None, None] - nodes[None]) / sigma
    density = (weights[None] * np.exp(-0.5 * z**2)).sum(axis=(1, 2)) / (num_probes * sigma * np.sqrt(2 * np.pi))
    return SpectralDensity(torch.as_tensor(grid), torch.as_tensor(density), torch.as_tensor(nodes),
                           torch.as_tensor(weights), float(sigma), hvps)
