"""effective_dimensionality against the closed form on known spectra."""

import torch
from tests.instruments._reference import (Quadratic, assert_untouched, known_spectrum_matrix,
                                    quadratic_loss, snapshot)

from lmech.instruments.effective_dimensionality import (effective_dimensionality,
                                                        effective_dimensionality_from_eigenvalues)


def test_closed_form_from_eigenvalues():
    r = effective_dimensionality_from_eigenvalues(torch.tensor([9.0, 1.0, -2.0]), z=1.0)
    assert abs(r.n_eff - (0.9 + 0.5)) < 1e-12 and r.n_negative == 1  # exact arithmetic
    big_z = effective_dimensionality_from_eigenvalues(torch.tensor([9.0, 1.0]), z=1e12)
    assert big_z.n_eff < 1e-10  # limit z -> inf gives 0
    small_z = effective_dimensionality_from_eigenvalues(torch.tensor([9.0, 1.0]), z=1e-12)
    assert abs(small_z.n_eff - 2.0) < 1e-10  # limit z -> 0 counts positive eigenvalues


def test_from_model_matches_closed_form_and_negative_control():
    lam = torch.tensor([10.0, 5.0, 1.0, 0.1, 0.01, 0.0], dtype=torch.float64)
    model = Quadratic(torch.zeros(6, dtype=torch.float64))
    batch = (torch.zeros(1), known_spectrum_matrix(lam, seed=1))
    before = snapshot(model)
    r = effective_dimensionality(model, quadratic_loss, batch, z=1.0, k=6, rel_tol=1e-10)
    assert_untouched(model, before)
    exact = (lam / (lam + 1.0)).sum().item()
    assert abs(r.n_eff - exact) < 1e-8  # float64 eigenvalues to ~1e-10
    assert abs(r.n_eff - (2 * lam / (2 * lam + 1.0)).sum().item()) > 1e-8  # wrong spectrum caught
    assert set(r.to_json()) == {"n_eff", "z", "eigenvalues", "n_negative", "converged"}
