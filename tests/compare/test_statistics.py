"""The bootstrap intervals: against the exact bootstrap distribution (all n^n resamples), and their
coverage on normal data against the nominal level, with the plain percentile interval as the
negative control that undercovers with few seeds."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from lmech.compare.statistics import difference_interval, mean_interval
from lmech.errors import InputError


def test_interval_uses_the_exact_bootstrap_standard_error():
    """Against the exact bootstrap distribution of the mean: all n^n resamples of 4 values."""
    x = np.array([0.3, 1.1, 1.4, 2.9])
    n = x.size
    exact = np.array([x[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])  # 256 resamples
    half = stats.t.ppf(0.95, n - 1) * math.sqrt(n / (n - 1)) * exact.std()
    got = mean_interval(x, level=0.9, resamples=400_000, seed=1)
    assert got.estimate == pytest.approx(x.mean(), abs=1e-15)
    assert got.high - got.estimate == pytest.approx(half, rel=0.01)
    assert got.estimate - got.low == pytest.approx(half, rel=0.01)
    # and the exact bootstrap standard error is the ddof=0 standard error of the mean
    assert exact.std() == pytest.approx(x.std() / math.sqrt(n), rel=1e-12)


def _coverage(make, truth: float, trials: int = 1500) -> float:
    return float(np.mean([(lambda i: i.low <= truth <= i.high)(make(t)) for t in range(trials)]))


def test_mean_interval_covers_at_the_nominal_level_with_five_seeds():
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 0.3, size=(1500, 5))
    coverage = _coverage(lambda t: mean_interval(samples[t], 0.95, resamples=2000, seed=t), 1.0)
    assert 0.93 <= coverage <= 0.975, coverage


def test_plain_percentile_interval_undercovers_negative_control():
    """Without the expansion (r = 1, normal quantile) five seeds give about 84% coverage, not 95%."""
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 0.3, size=(1500, 5))
    hits = 0
    for t in range(1500):
        boot = samples[t][rng.integers(0, 5, size=(2000, 5))].mean(1)
        low, high = np.quantile(boot, [0.025, 0.975])
        hits += low <= 1.0 <= high
    assert hits / 1500 < 0.9


@pytest.mark.parametrize("paired", [True, False])
def test_difference_interval_covers_at_the_nominal_level(paired):
    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 0.5, size=(1500, 6))
    b = a * 0.5 + rng.normal(1.0, 0.4, size=(1500, 6)) if paired else rng.normal(1.0, 0.2, size=(1500, 6))
    truth = 2.0 - (2.0 * 0.5 + 1.0) if paired else 1.0
    coverage = _coverage(lambda t: difference_interval(a[t], b[t], paired, 0.95, resamples=2000, seed=t), truth)
    assert 0.93 <= coverage <= 0.975, coverage


def test_a_real_difference_is_significant_and_identical_samples_are_not():
    a = np.array([1.0, 1.1, 0.9, 1.05, 0.95])
    assert difference_interval(a + 0.5, a, paired=False).excludes_zero
    same = difference_interval(a, a, paired=True)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero


@pytest.mark.parametrize("values, message", [([1.0], "at least 2"), ([1.0, float("inf")], "finite")])
def test_bad_samples_are_refused(values, message):
    with pytest.raises(InputError, match=message):
        mean_interval(values)
    with pytest.raises(InputError, match="level"):
        mean_interval([1.0, 2.0], level=1.5)
