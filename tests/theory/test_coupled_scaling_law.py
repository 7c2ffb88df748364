"""fit_coupled_scaling_law: recovery from synthetic data, order invariance, reduction to Chinchilla, refusals."""

import numpy as np
import pytest

from lmech.errors import InputError, NotIdentifiableError
from lmech.theory.coupled_scaling_law import fit_coupled_scaling_law
from lmech.theory.scaling_law import fit_scaling_law

TRUE = {"E": 0.3, "A": 20.0, "B": 5e4, "alpha": 0.9, "beta": 1.7, "p": 3.0}


def law(n, d, E, A, B, alpha, beta, p):
    return E + ((A / n**alpha) ** (1 / p) + (B / d**beta) ** (1 / p)) ** p


def grid(noise=0.0, seed=0, **params):
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(256, 4096, 5), np.geomspace(4096, 65536, 9)))
    loss = law(n, d, **(TRUE | params))
    return n, d, loss * np.exp(noise * np.random.default_rng(seed).standard_normal(loss.shape))


@pytest.fixture(scope="module")
def noisy_fit():
    return fit_coupled_scaling_law(*grid(noise=0.003), bootstrap=30)


def test_recovers_known_parameters_from_noisy_data(noisy_fit):
    f = noisy_fit
    assert f.E == pytest.approx(TRUE["E"], rel=0.05)
    assert f.alpha == pytest.approx(TRUE["alpha"], abs=0.15)
    assert f.beta == pytest.approx(TRUE["beta"], abs=0.3)
    assert f.p == pytest.approx(TRUE["p"], rel=0.5)
    # the loss surface itself is what matters: within the noise everywhere on the grid
    n, d, _ = grid()
    assert np.max(np.abs(f.loss(n, d) / law(n, d, **TRUE) - 1)) < 0.01


def test_intervals_bracket_the_estimates_and_forecasts_extrapolate(noisy_fit):
    f = noisy_fit
    for name in ("E", "A", "B", "alpha", "beta", "p"):
        lo, hi = f.intervals[name]
        assert lo <= hi and hi - lo < 10 * max(abs(getattr(f, name)), 1.0), (name, lo, hi)
    lo, hi = f.intervals["E"]
    assert abs(TRUE["E"] - f.E) < 2 * (hi - lo)  # one draw: the truth within two interval widths
    n, d = np.array([8192.0]), np.array([65536.0])  # 2x beyond the largest model
    lo, hi = f.interval(n, d)
    truth = law(n, d, **TRUE)
    point = f.loss(n, d)[0]
    assert lo[0] <= point <= hi[0] and abs(point - truth[0]) < 2 * (hi[0] - lo[0])
    assert point == pytest.approx(truth[0], rel=0.01)


def test_invariant_to_row_order():
    n, d, loss = grid(noise=0.003)
    order = np.random.default_rng(1).permutation(loss.size)
    a = fit_coupled_scaling_law(n, d, loss, bootstrap=0)
    b = fit_coupled_scaling_law(n[order], d[order], loss[order], bootstrap=0)
    assert np.allclose(a.theta, b.theta, rtol=1e-4, atol=1e-4)


def test_additive_data_give_p_one_and_agree_with_chinchilla():
    n, d, loss = grid(p=1.0, A=400.0, B=2e3, alpha=0.6, beta=0.7)
    coupled = fit_coupled_scaling_law(n, d, loss, bootstrap=0)
    additive = fit_scaling_law(n, d, loss, bootstrap=0)
    assert coupled.p == pytest.approx(1.0, abs=0.05)
    for name in ("E", "alpha", "beta"):
        assert getattr(coupled, name) == pytest.approx(getattr(additive, name), rel=0.05)


def test_refuses_too_few_rows_and_bad_values():
    n, d, loss = grid()
    with pytest.raises(NotIdentifiableError, match="too few points"):
        fit_coupled_scaling_law(n[:11], d[:11], loss[:11], bootstrap=0)
    with pytest.raises(InputError, match="finite and > 0"):
        fit_coupled_scaling_law(n, d, np.where(np.arange(loss.size) == 3, -1.0, loss), bootstrap=0)


def test_refuses_data_with_no_bottleneck_crossover():
    """Model-size term everywhere negligible: B, beta, p trade off or hit the box; no answer, not a wrong one."""
    n, d, loss = grid(A=1e-6)
    with pytest.raises(NotIdentifiableError):
        fit_coupled_scaling_law(n, d, loss, bootstrap=0)


def test_compute_optimal_allocation_matches_brute_force():
    from lmech.theory.coupled_scaling_law import CoupledScalingLawFit

    fit = CoupledScalingLawFit(**TRUE, objective=0.0, n_points=0, level=0.95)
    for budget in (1e9, 1e12, 1e15):
        n_grid = np.geomspace(1.0, budget / 6, 200_001)
        losses = law(n_grid, budget / (6 * n_grid), **TRUE)
        alloc = fit.allocate(budget)
        assert alloc.n_opt[0] == pytest.approx(n_grid[np.argmin(losses)], rel=1e-3)
        assert alloc.loss[0] == pytest.approx(losses.min(), rel=1e-9)
        assert alloc.n_opt[0] * alloc.d_opt[0] * 6 == pytest.approx(budget)
