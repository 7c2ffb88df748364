"""benign_overfitting: effective ranks vs brute-force sums, the deterministic equivalent vs the
isotropic closed form and Monte Carlo min-norm regression, the interpolator vs pinv."""

import numpy as np
import pytest

from lmech.errors import InputError
from lmech.theory.benign_overfitting import (
    benign_terms,
    critical_index,
    effective_ranks,
    exponential_plus_isotropic_spectrum,
    min_norm_excess_risk,
    min_norm_interpolator,
)
from lmech.theory.double_descent import min_norm_risk


def test_effective_ranks_match_brute_force_sums():
    lam = np.sort(np.random.default_rng(0).exponential(size=40))[::-1]
    r, big_r = effective_ranks(lam)
    for k in range(40):
        tail = lam[k:]  # lambda_{k+1}, ... in the paper's 1-based indexing
        assert r[k] == pytest.approx(tail.sum() / tail[0], rel=1e-12)
        assert big_r[k] == pytest.approx(tail.sum() ** 2 / (tail**2).sum(), rel=1e-12)


def test_isotropic_ranks_and_critical_index():
    r, big_r = effective_ranks(np.ones(10))
    np.testing.assert_allclose(r, np.arange(10, 0, -1), rtol=1e-12)  # r_k = R_k = p - k
    np.testing.assert_allclose(big_r, np.arange(10, 0, -1), rtol=1e-12)
    assert critical_index(np.ones(10), 4) == 0
    assert critical_index(np.ones(10), 11) is None
    terms = benign_terms(np.ones(10), 11)
    assert terms.k_star is None and terms.variance_bound == np.inf


def test_isotropic_deterministic_equivalent_is_the_hastie_closed_form():
    for gamma in (1.5, 2.0, 5.0):
        n = 200
        p = int(gamma * n)
        beta = np.zeros(p)
        beta[3] = 0.7
        got = min_norm_excess_risk(np.ones(p), beta, n, noise=0.5)
        want = np.asarray(min_norm_risk([p / n], signal=0.7, noise=0.5))[0]
        assert got.total == pytest.approx(float(want), rel=1e-9)
        assert got.kappa == pytest.approx(p / n - 1, rel=1e-9)


@pytest.mark.parametrize("p_of_n", [lambda n: int(round(n**1.5)), lambda n: 2 * n])
def test_deterministic_equivalent_matches_monte_carlo(p_of_n):
    """n = 128, 400 draws: the standard error is about 1.5% of the risk; 6% covers it and O(1/n)."""
    n = 128
    p = p_of_n(n)
    lam = exponential_plus_isotropic_spectrum(p, tail_trace=1.0, decay=1.0)
    beta = np.zeros(p)
    beta[0] = 1.0
    rng = np.random.default_rng(1)
    risks = []
    for _ in range(400):
        x = rng.standard_normal((n, p)) * np.sqrt(lam)
        y = x @ beta + rng.standard_normal(n)
        e = min_norm_interpolator(x, y) - beta
        risks.append(np.sum(lam * e * e))
    assert np.mean(risks) == pytest.approx(min_norm_excess_risk(lam, beta, n, 1.0).total, rel=0.06)


def test_deterministic_equivalent_bias_matches_monte_carlo_without_noise():
    """Noise-free labels on a power-law spectrum: pure bias, 200 draws, n = 100 (s.e. ~2%)."""
    n, p = 100, 400
    lam = np.arange(1, p + 1, dtype=float) ** -1.0
    rng = np.random.default_rng(2)
    beta = rng.standard_normal(p) * np.sqrt(lam)
    risks = []
    for _ in range(200):
        x = rng.standard_normal((n, p)) * np.sqrt(lam)
        e = min_norm_interpolator(x, x @ beta) - beta
        risks.append(np.sum(lam * e * e))
    de = min_norm_excess_risk(lam, beta, n, 0.0)
    assert de.variance == 0.0
    assert np.mean(risks) == pytest.approx(de.bias, rel=0.08)


def test_interpolator_is_the_pseudoinverse_solution():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((7, 20)), rng.standard_normal(7)
    b = min_norm_interpolator(x, y)
    np.testing.assert_allclose(b, np.linalg.pinv(x) @ y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x @ b, y, rtol=1e-10, atol=1e-12)


def test_benign_terms_fall_for_the_benign_sequence_only():
    ns = [16, 64, 256, 1024]
    benign = [benign_terms(exponential_plus_isotropic_spectrum(int(n**1.5), 1.0), n).variance_bound for n in ns]
    not_benign = [benign_terms(exponential_plus_isotropic_spectrum(2 * n, 1.0), n).variance_bound for n in ns]
    assert all(a > b for a, b in zip(benign, benign[1:])) and benign[-1] < 0.06
    assert min(not_benign) > 0.5  # n / R_{k*} -> 1/2


def test_spectrum_formula():
    lam = exponential_plus_isotropic_spectrum(5, tail_trace=2.0, decay=0.5)
    np.testing.assert_allclose(lam, np.exp(-np.arange(5) / 0.5) + 0.4, rtol=1e-14)


@pytest.mark.parametrize("spectrum", [[], [1.0, -1.0], [1.0, 2.0], [np.nan]])
def test_bad_spectrum_is_an_input_error(spectrum):
    with pytest.raises(InputError):
        effective_ranks(np.asarray(spectrum, dtype=float))


def test_interpolation_needs_more_features_than_examples():
    with pytest.raises(InputError):
        min_norm_excess_risk(np.ones(5), np.zeros(5), 5, 1.0)
