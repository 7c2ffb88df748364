"""Power-law fit on synthetic Pareto samples; weight_spectrum on layers of known spectra."""

import numpy as np
import pytest
import torch
from ._observables_reference import assert_untouched, snapshot

from lmech.observables.weight_spectrum import fit_power_law, weight_spectrum


def _pareto(alpha, n, seed, xmin=1.0):
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0))


@pytest.mark.parametrize("alpha", [2.0, 3.5])
def test_recovers_pareto_exponent(alpha):
    x = _pareto(alpha, 3000, seed=0)
    a_hat, xmin, d, nt = fit_power_law(x)
    se = (a_hat - 1) / np.sqrt(nt)
    assert abs(a_hat - alpha) < 4 * se  # MLE standard error (Clauset eq. 3.2), 4 SE
    assert d < 0.05 and nt > 100


def test_finds_tail_above_a_body():
    rng = np.random.default_rng(1)
    body = rng.uniform(0.0, 1.0, 2000) * 0.9  # non-power-law body below the tail
    x = np.concatenate([body, _pareto(2.5, 1500, seed=2, xmin=1.0)])
    a_hat, xmin, _, nt = fit_power_law(x)
    assert abs(a_hat - 2.5) < 4 * (a_hat - 1) / np.sqrt(nt)  # 4 SE
    assert xmin >= 0.85


def test_negative_control_wrong_exponent_fails():
    x = _pareto(3.5, 3000, seed=3)
    a_hat, _, _, nt = fit_power_law(x)
    assert abs(a_hat - 2.0) > 4 * (a_hat - 1) / np.sqrt(nt)


def test_layers_flagged_eigenvalues_exact_and_untouched():
    model = torch.nn.Sequential(torch.nn.Linear(80, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    before = snapshot(model)
    r = weight_spectrum(model)
    assert_untouched(model, before)
    assert set(r.layers) == {"0.weight", "2.weight"}
    small = r.layers["2.weight"]
    assert not small.fitted and np.isnan(small.alpha) and "10 eigenvalues" in small.note
    big = r.layers["0.weight"]
    w = model[0].weight.detach().double()
    ref = torch.linalg.eigvalsh(w.T @ w).flip(0)
    assert big.fitted and big.eigenvalues.shape == (80,)
    assert torch.allclose(big.eigenvalues, ref, rtol=1e-10, atol=1e-9)  # float64, two algorithms
    j = r.to_json()
    assert set(j["layers"]["0.weight"]) == {"eigenvalues", "alpha", "alpha_standard_error", "xmin",
                                           "ks_distance", "n_tail", "fitted", "note"}
