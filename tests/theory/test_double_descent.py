"""double_descent: closed forms vs Monte Carlo regression, MP quadrature, and limits."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize_scalar

from lmech.errors import InputError
from lmech.theory.double_descent import (
    _mp_stieltjes,
    min_norm_risk,
    optimal_ridge_penalty,
    ridge_risk,
)

R, SIGMA, N = 1.0, 0.5, 400


def _mc_risk(gamma, lam, n_seeds):
    """Mean and standard error of ||beta_hat - beta||^2 over seeds (n = 400, p = gamma n)."""
    p = int(round(gamma * N))
    risks = []
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((N, p))
        beta = rng.standard_normal(p)
        beta *= R / np.linalg.norm(beta)
        y = x @ beta + SIGMA * rng.standard_normal(N)
        # Dual form (p > n) or primal form; both equal (X^T X + n lam I)^{-1} X^T y, and at
        # lam = 0 they are the least-squares / min-norm interpolating solutions X^+ y.
        if p > N:
            b = x.T @ np.linalg.solve(x @ x.T + N * lam * np.eye(N), y)
        else:
            b = np.linalg.solve(x.T @ x + N * lam * np.eye(p), x.T @ y)
        risks.append(np.sum((b - beta) ** 2))
    risks = np.array(risks)
    return risks.mean(), risks.std(ddof=1) / np.sqrt(n_seeds)


# Finite-n bias is O(1/n) away from gamma = 1: 2% of the risk covers it at n = 400
# (e.g. gamma = 0.5: exact finite-n mean p/(n-p-1) = 1.005 x the limit).
BIAS = 0.02


@pytest.mark.parametrize("gamma", [0.5, 2.0, 4.0])
def test_min_norm_matches_monte_carlo(gamma):
    mean, se = _mc_risk(gamma, 0.0, 24)
    theory = min_norm_risk(gamma, signal=R, noise=SIGMA)[0]
    assert abs(mean - theory) < 4 * se + BIAS * theory, (mean, se, theory)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_ridge_matches_monte_carlo(gamma):
    lam = 0.3
    mean, se = _mc_risk(gamma, lam, 24)
    theory = ridge_risk(gamma, lam, signal=R, noise=SIGMA)[0]
    assert abs(mean - theory) < 4 * se + BIAS * theory, (mean, se, theory)


def test_negative_control_wrong_aspect_ratio_fails():
    # Confusing gamma = p/n with n/p: MC at p/n = 2 against the curve at 0.5 must fail the same check.
    mean, se = _mc_risk(2.0, 0.0, 24)
    wrong = min_norm_risk(0.5, signal=R, noise=SIGMA)[0]
    assert abs(mean - wrong) > 4 * se + BIAS * wrong


def _mp_density(s, g):
    lo, hi = (1 - np.sqrt(g)) ** 2, (1 + np.sqrt(g)) ** 2
    return np.sqrt(max((hi - s) * (s - lo), 0.0)) / (2 * np.pi * g * s)


@pytest.mark.parametrize("g", [0.3, 0.9, 1.5, 3.0])
def test_stieltjes_matches_quadrature(g):
    lam = 0.2
    lo, hi = (1 - np.sqrt(g)) ** 2, (1 + np.sqrt(g)) ** 2
    atom = max(1 - 1 / g, 0.0)  # mass at 0 when p > n
    m_ref = quad(lambda s: _mp_density(s, g) / (s + lam), lo, hi, epsabs=1e-13)[0] + atom / lam
    dm_ref = quad(lambda s: _mp_density(s, g) / (s + lam) ** 2, lo, hi, epsabs=1e-13)[0] + atom / lam**2
    m, dm = _mp_stieltjes(np.array(g), np.float64(lam))
    # quad on a square-root edge density: ~1e-9 relative accuracy.
    assert abs(m - m_ref) / m_ref < 1e-8
    assert abs(dm - dm_ref) / dm_ref < 1e-8


@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.8, 1.25, 2.0, 5.0])
def test_ridge_tends_to_min_norm(gamma):
    ridge = ridge_risk(gamma, 1e-7, signal=R, noise=SIGMA)[0]
    ridgeless = min_norm_risk(gamma, signal=R, noise=SIGMA)[0]
    # R(lam) - R(0) = O(lam) with an O(1/|1-gamma|^3) constant; 1e-4 relative covers gamma in [0.2, 5].
    assert abs(ridge - ridgeless) / ridgeless < 1e-4
    # Not a tautology: at lam = 0.1 the two differ visibly.
    assert abs(ridge_risk(gamma, 0.1, signal=R, noise=SIGMA)[0] - ridgeless) / ridgeless > 1e-3


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_optimal_penalty_minimises_ridge_risk(gamma):
    lam_star = optimal_ridge_penalty(gamma, signal=R, noise=SIGMA)
    res = minimize_scalar(lambda ll: ridge_risk(gamma, np.exp(ll), signal=R, noise=SIGMA)[0],
                          bounds=(-10, 5), method="bounded", options={"xatol": 1e-9})
    assert abs(np.exp(res.x) - lam_star) / lam_star < 1e-3  # flat minimum: 1e-3 in lam


def test_test_noise_convention_and_peak():
    g = np.array([0.5, 1.0, 2.0])
    excess = min_norm_risk(g, signal=R, noise=SIGMA)
    total = min_norm_risk(g, signal=R, noise=SIGMA, include_test_noise=True)
    np.testing.assert_allclose(total[[0, 2]] - excess[[0, 2]], SIGMA**2, rtol=1e-14)
    assert np.isinf(excess[1])
    # Noiseless: underparameterized is exact; overparameterized keeps the bias r^2(1 - 1/gamma).
    np.testing.assert_allclose(min_norm_risk([0.5, 2.0], signal=R, noise=0.0), [0.0, 0.5], atol=1e-15)


def test_rejects_bad_input():
    with pytest.raises(InputError):
        min_norm_risk(-1.0, signal=R, noise=SIGMA)
    with pytest.raises(InputError):
        ridge_risk(0.5, 0.0, signal=R, noise=SIGMA)
