"""hessian_spectral_density (SLQ) against the exact spectrum of an explicit Hessian."""

import numpy as np
import torch
from tests.instruments._reference import (Quadratic, assert_untouched, ce, explicit_hessian,
                                    known_spectrum_matrix, quadratic_loss, small_mlp, snapshot)

from lmech.instruments.spectral_density import hessian_spectral_density


def test_moments_match_exact_spectrum():
    model, batch = small_mlp(seed=0)
    lam = torch.linalg.eigvalsh(explicit_hessian(model, ce, batch))
    r = hessian_spectral_density(model, ce, batch, num_probes=30, lanczos_steps=10, seed=1)
    for order in (1, 2, 3, 4):
        exact = lam.pow(order).mean().item()
        est, se = r.moment(order)
        # 10 Lanczos steps: Gauss quadrature exact to degree 19, so only probe noise: 4 SE
        assert abs(est - exact) < 4 * se, (order, est, exact, se)
    # negative control: a spectrum 1.5x too wide fails the same 4-SE check
    est2, se2 = r.moment(2)
    assert abs(est2 - (1.5 * lam).pow(2).mean().item()) > 4 * se2


def test_full_krylov_space_recovers_every_eigenvalue():
    lam = torch.tensor([4.0, 2.0, 1.0, 0.5, -0.5, 0.0], dtype=torch.float64)
    model = Quadratic(torch.zeros(6, dtype=torch.float64))
    r = hessian_spectral_density(model, quadratic_loss, (torch.zeros(1), known_spectrum_matrix(lam, 0)),
                                 num_probes=2, lanczos_steps=6)
    for row in r.nodes:
        # a 6-step Krylov space of a 6x6 matrix is the whole space: exact in float64
        assert torch.allclose(row.sort().values, lam.sort().values, atol=1e-10)


def test_density_integrates_to_one():
    model, batch = small_mlp(seed=2)
    r = hessian_spectral_density(model, ce, batch, num_probes=3, lanczos_steps=20, grid_size=2000)
    total = np.trapezoid(r.density.numpy(), r.grid.numpy())
    # weights sum to 1 per probe; grid spans +-5 sigma (mass outside ~6e-7): 1e-4
    assert abs(total - 1.0) < 1e-4
    assert torch.allclose(r.weights.sum(dim=1), torch.ones(3, dtype=torch.float64), atol=1e-12)


def test_untouched_and_json():
    model, batch = small_mlp(seed=3)
    before = snapshot(model)
    r = hessian_spectral_density(model, ce, batch, num_probes=2, lanczos_steps=5, grid_size=50)
    assert_untouched(model, before)
    j = r.to_json()
    assert len(j["grid"]) == 50 and len(j["moments"]) == 4 and j["hvp_count"] == 10
