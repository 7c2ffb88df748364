"""critical_batch: recovery on synthetic sweeps, the E-S identity, refusal, noise-scale estimate."""

import numpy as np
import pytest

from lmech.errors import InputError
from lmech.theory.critical_batch import (
    NotIdentifiableError,
    fit_critical_batch,
    predicted_critical_batch,
    simple_noise_scale,
)

S_MIN, B_CRIT = 2000.0, 512.0
BATCHES = 2.0 ** np.arange(4, 15)  # 16 .. 16384, brackets B_crit by 5 octaves each side


def test_exact_data_recovered_and_identity_holds():
    fit = fit_critical_batch(BATCHES, S_MIN * (1 + B_CRIT / BATCHES), bootstrap=0)
    # Noise-free: LM on a 2-parameter log model converges to machine precision; 1e-9 relative.
    assert abs(fit.s_min / S_MIN - 1) < 1e-9 and abs(fit.b_crit / B_CRIT - 1) < 1e-9
    # McCandlish Eq. 2.11: (S/S_min - 1)(E/E_min - 1) = 1 with E = B S.
    s = fit.steps(BATCHES)
    np.testing.assert_allclose((s / fit.s_min - 1) * (BATCHES * s / fit.e_min - 1), 1.0, rtol=1e-9)


def test_noisy_recovery_with_interval():
    rng = np.random.default_rng(0)
    b = np.repeat(BATCHES, 3)
    s = S_MIN * (1 + B_CRIT / b) * np.exp(0.05 * rng.standard_normal(b.size))  # 5% step noise
    fit = fit_critical_batch(b, s, bootstrap=200, seed=1)
    # 33 points at 5% noise: standard errors ~2% (S_min) and ~4% (B_crit); 4 SE tolerance.
    assert abs(fit.s_min / S_MIN - 1) < 0.08
    assert abs(fit.b_crit / B_CRIT - 1) < 0.16
    lo, hi = fit.intervals["b_crit"]
    assert lo < B_CRIT < hi and hi / lo < 1.5
    # Negative control: a pure 1/B law (perfect scaling, no S_min) fitted by a plain
    # straight line in log-log would give B_crit = inf; ours must not return B_CRIT for it.
    with pytest.raises(NotIdentifiableError):
        fit_critical_batch(b, 1e6 / b, bootstrap=0)


def test_refuses_non_identifiable_sweeps():
    with pytest.raises(NotIdentifiableError, match="3 distinct"):
        fit_critical_batch(np.full(5, 64.0), np.full(5, 1000.0), bootstrap=0)
    with pytest.raises(NotIdentifiableError, match="bracket"):  # all B >> B_crit: S is flat
        big = np.array([1e5, 2e5, 4e5, 8e5])
        fit_critical_batch(big, S_MIN * (1 + 5.0 / big), bootstrap=0)
    with pytest.raises(InputError, match="row 1"):
        fit_critical_batch(np.array([1.0, -2.0, 3.0]), np.ones(3), bootstrap=0)


def test_simple_noise_scale_matches_known_covariance():
    rng = np.random.default_rng(0)
    p, n = 2000, 400
    g_true = np.full(p, 0.1)  # |G|^2 = 20
    sigma = rng.uniform(0.5, 1.5, p)  # diagonal covariance
    grads = g_true + rng.standard_normal((n, p)) * sigma
    expected = float((sigma**2).sum() / (g_true @ g_true))
    est = simple_noise_scale(grads)
    # SE of the |G|^2 estimate: sqrt(4 G^T Sigma G / N + 2 tr(Sigma^2) / N^2) ~ 0.5, i.e. 2.5%
    # of |G|^2; 10% is 4 SE.
    assert abs(est / expected - 1) < 0.10
    assert predicted_critical_batch(est) == est
    # Negative control: without the tr(Sigma)/N bias correction (here 27% of |G|^2) it fails.
    naive = float(((grads - grads.mean(0)) ** 2).sum() / (n - 1) / (grads.mean(0) @ grads.mean(0)))
    assert abs(naive / expected - 1) > 0.10
