"""Power-law fit on synthetic Pareto samples and against a brute-force xmin scan; weight_spectrum
eigenvalues against squared singular values."""

import bisect
import math

import numpy as np
import pytest
import torch
from tests.instruments._reference import assert_untouched, snapshot

from lmech.instruments.weight_spectrum import fit_power_law, weight_spectrum


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


def _brute_force_scan(x, min_tail, right_limits=False):
    """Clauset's plfit.m scan in plain Python: every distinct xmin, direct MLE sum, KS at each sample.

    The empirical CDF is taken at the left limit of each step, #{tail < x} / n (plfit.m's
    (0:n-1)/n); right_limits=True also takes #{tail <= x} / n (the exact supremum).
    """
    x = sorted(float(v) for v in x if v > 0)
    best = (math.nan, math.nan, math.inf, 0)
    for j in range(len(x) - min_tail + 1):
        if j > 0 and x[j] == x[j - 1]:
            continue
        tail = x[j:]
        n = len(tail)
        alpha = 1.0 + n / sum(math.log(v / x[j]) for v in tail)
        d = 0.0
        for v in tail:
            p = 1.0 - (v / x[j]) ** (1.0 - alpha)
            d = max(d, abs(p - bisect.bisect_left(tail, v) / n))
            if right_limits:
                d = max(d, abs(p - bisect.bisect_right(tail, v) / n))
        if d < best[2]:
            best = (alpha, x[j], d, n)
    return best


def _body_and_tail(seed, decimals=None):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0.0, 0.9, 300), _pareto(2.5, 300, seed=seed + 100)])
    return np.round(x, decimals) if decimals is not None else x


@pytest.mark.parametrize("decimals", [None, 2])  # 2 decimals: ties (251 distinct values of 600)
@pytest.mark.parametrize("min_tail", [2, 10])
def test_matches_brute_force_scan(decimals, min_tail):
    x = _body_and_tail(5, decimals)
    alpha, xmin, d, nt = fit_power_law(x, min_tail=min_tail)
    ref = _brute_force_scan(x, min_tail)
    assert xmin == ref[1] and nt == ref[3]
    assert abs(alpha - ref[0]) < 1e-12 * ref[0]  # float64, suffix sums vs direct sums
    assert abs(d - ref[2]) < 1e-12


def test_negative_control_exact_supremum_picks_another_xmin():
    # With right limits too (the exact KS supremum), this sample's best tail grows from 159 to
    # 300 samples and alpha moves by 0.087, so the comparison above tells the conventions apart.
    x = _body_and_tail(5)
    alpha, xmin, _, nt = fit_power_law(x)
    exact = _brute_force_scan(x, 10, right_limits=True)
    assert xmin != exact[1] and abs(nt - exact[3]) > 100 and abs(alpha - exact[0]) > 0.05


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
    assert big.fitted and big.eigenvalues.shape == (80,) and small.eigenvalues.shape == (10,)
    for layer, module in ((big, model[0]), (small, model[2])):  # tall (100, 80) and wide (10, 100)
        ref = torch.linalg.svdvals(module.weight.detach().double()).pow(2)
        # float64 Gram eigenvalues vs squared singular values: two algorithms, error ~1e-16 lambda_max
        assert torch.allclose(layer.eigenvalues, ref, rtol=1e-10, atol=1e-12 * float(ref[0]))
    j = r.to_json()
    assert set(j["layers"]["0.weight"]) == {"eigenvalues", "alpha", "alpha_standard_error", "xmin",
                                           "ks_distance", "n_tail", "fitted", "note"}
