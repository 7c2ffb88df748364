"""lmech.theory.pac_bayes against scipy, torch.distributions and a binomial coverage simulation."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import rel_entr

from lmech.theory.pac_bayes import (
    bernoulli_kl,
    gaussian_kl_diagonal,
    gibbs_error_bound,
    kl_inverse_upper,
    maurer_bound,
    mcallester_relaxation,
    sample_convergence_bound,
)


@pytest.mark.parametrize("q,p", [(0.1, 0.3), (0.0, 0.2), (0.5, 0.5), (0.9, 0.05), (1.0, 0.7)])
def test_bernoulli_kl_matches_scipy_rel_entr(q, p):
    expected = rel_entr(q, p) + rel_entr(1 - q, 1 - p)
    assert abs(bernoulli_kl(q, p) - expected) < 1e-12  # float64 identity


def test_bernoulli_kl_off_support_is_infinite_and_bad_input_raises():
    assert bernoulli_kl(0.3, 0.0) == math.inf
    with pytest.raises(ValueError):
        bernoulli_kl(1.2, 0.5)


@pytest.mark.parametrize("q,c", [(0.05, 0.01), (0.12, 0.04), (0.3, 0.2), (0.0, 0.05), (0.49, 1e-4)])
def test_kl_inverse_matches_brentq(q, c):
    expected = brentq(lambda p: bernoulli_kl(q, p) - c, q + 1e-15, 1 - 1e-15, xtol=1e-14)
    got = kl_inverse_upper(q, c)
    # kl(q || p) ~ (p - q)^2 / (2 q (1 - q)) near p = q, so kl's rounding (~1e-17) moves either
    # root by up to ~1e-8 there; elsewhere both agree to brentq's xtol
    assert abs(got - expected) < 1e-8
    assert abs(bernoulli_kl(q, got) - c) < 1e-8


def test_kl_inverse_edges_and_negative_control():
    assert kl_inverse_upper(0.2, 0.0) == pytest.approx(0.2, abs=1e-8)  # the flat minimum, as above
    assert kl_inverse_upper(0.2, 100.0) == 1.0
    assert kl_inverse_upper(1.0, 0.1) == 1.0
    # negative control: the inverse of a larger budget is strictly larger
    assert kl_inverse_upper(0.1, 0.05) > kl_inverse_upper(0.1, 0.04) + 1e-3
    with pytest.raises(ValueError):
        kl_inverse_upper(0.1, -1.0)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, mp = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    sq, sp = 0.1 + torch.rand(50, generator=g, dtype=torch.float64), 0.1 + torch.rand(50, generator=g, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mq, sq), torch.distributions.Normal(mp, sp)).sum()
    assert abs(gaussian_kl_diagonal(mq.numpy(), mp.numpy(), sq.numpy(), sp.numpy()) - float(expected)) < 1e-10
    # equal scales: only the mean term, ||dm||^2 / (2 s^2)
    assert gaussian_kl_diagonal(mq.numpy(), mp.numpy(), 0.3, 0.3) == pytest.approx(
        float(((mq - mp) ** 2).sum()) / (2 * 0.09), rel=1e-12)
    with pytest.raises(ValueError):
        gaussian_kl_diagonal(mq.numpy(), mp.numpy()[:3], 1.0, 1.0)


def test_maurer_is_tighter_than_mcallester_and_composes():
    for q, kl, n in ((0.05, 200.0, 10_000), (0.2, 10.0, 1000), (0.0, 500.0, 30_000)):
        assert maurer_bound(q, kl, n, 0.05) <= mcallester_relaxation(q, kl, n, 0.05) + 1e-12
    composed = gibbs_error_bound(0.1, 1000, 300.0, 10_000, 0.025, 0.01)
    assert composed == pytest.approx(maurer_bound(sample_convergence_bound(0.1, 1000, 0.01), 300.0, 10_000, 0.025))
    assert composed > maurer_bound(0.1, 300.0, 10_000, 0.025)  # the Monte-Carlo step only loosens it


def test_bound_covers_the_true_error_with_probability_at_least_one_minus_delta():
    """Brute force: KL = 0 (posterior = prior, one classifier) reduces the bound to a binomial test.

    Over 20,000 simulated training sets the bound must exceed the true error p in >= 1 - delta of
    them; the bound with its slack above the empirical error cut to 30% (the negative control) must
    fail that coverage (measured 0.85 < 0.9; the full bound is conservative, 0.99+).
    """
    rng = np.random.default_rng(0)
    p, n, delta = 0.2, 400, 0.1
    errors = rng.binomial(n, p, size=20_000) / n
    bounds = np.asarray([maurer_bound(float(e), 0.0, n, delta) for e in np.unique(errors)])
    lookup = dict(zip(np.unique(errors), bounds))
    covered = np.mean([lookup[e] >= p for e in errors])
    assert covered >= 1 - delta
    shrunk = np.mean([e + 0.3 * (lookup[e] - e) >= p for e in errors])
    assert shrunk < 1 - delta


def test_sample_convergence_covers_the_gibbs_error():
    """Brute force for the Monte-Carlo step: m Bernoulli(p) draws, the bound covers p in >= 1 - delta'."""
    rng = np.random.default_rng(1)
    p, m, delta = 0.15, 300, 0.1
    draws = rng.binomial(m, p, size=5000) / m
    cover = np.mean([sample_convergence_bound(float(e), m, delta) >= p for e in draws])
    assert cover >= 1 - delta
