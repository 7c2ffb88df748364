"""Bootstrap intervals over seeds for a mean and for a difference of means, calibrated for few seeds.

Estimated: the mean of per-seed values (e.g. final test losses), or the difference of two
optimizers' means, with a (1 - alpha) interval.

Algorithm: the standard bootstrap interval (Efron & Tibshirani 1993, "An introduction to the
bootstrap", Sec. 13.2), estimate +- q * r * se_boot, with se_boot the standard deviation of the
bootstrap replicates of the estimate, two small-sample corrections, and q the t quantile
t_{nu, 1 - alpha/2} in place of the normal one (their Sec. 13.2 remark for small n): r =
sqrt(unbiased variance / bootstrap variance) = sqrt(n / (n - 1)) for one sample (the bootstrap
variance of a mean is (n - 1)/n of the unbiased one), and nu = n - 1 (Welch-Satterthwaite for two
independent samples). Why not a percentile interval: with the 3-10 seeds a comparison affords, the
percentile intervals undercover; measured on normal data with 5 seeds (tests/compare), the plain
percentile interval covers 84% at a nominal 95%, and Hesterberg's (2015) expanded percentile
interval 91%, because the resampled means cannot leave the data's range. This one covers at the
nominal level on normal data.

Paired (the same seeds for both optimizers, as `compare_optimizers` runs them): the interval of the
mean of per-seed differences. Unpaired: each sample resampled on its own.

Cost: O(resamples * n) with numpy; 10,000 resamples of 5 seeds take about a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lmech.errors import InputError

__all__ = ["Interval", "mean_interval", "difference_interval"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its (1 - alpha) interval [low, high]."""

    estimate: float
    low: float
    high: float
    level: float

    @property
    def excludes_zero(self) -> bool:
        """True when 0 lies outside [low, high]: the difference is significant at this level."""
        return self.low > 0 or self.high < 0


def _values(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size < 2:
        raise InputError(f"{name}: a bootstrap interval needs at least 2 seeds, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name}: the values must be finite (a diverged run has no loss to average)")
    return array


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")


def _interval(boot: np.ndarray, estimate: float, level: float, ratio: float, dof: float) -> Interval:
    """estimate +- t_{dof} * ratio * sd(boot)."""
    spread = float(np.std(boot, ddof=1))
    if not spread > 0:  # every resample equal (all seeds agree): no spread
        return Interval(estimate, estimate, estimate, level)
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * ratio * spread
    return Interval(estimate, estimate - half, estimate + half, level)


def mean_interval(values, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Interval:
    """The mean of `values` (n seeds) with its expanded-percentile bootstrap interval."""
    _check_level(level)
    x = _values(values, "values")
    n = x.size
    rng = np.random.default_rng(seed)
    boot = x[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    return _interval(boot, float(x.mean()), level, math.sqrt(n / (n - 1)), float(n - 1))


def difference_interval(a, b, paired: bool, level: float = 0.95, resamples: int = 10_000,
                        seed: int = 0) -> Interval:
    """mean(a) - mean(b) with its interval; paired: a[i] and b[i] come from the same seed."""
    _check_level(level)
    x, y = _values(a, "a"), _values(b, "b")
    if paired:
        if x.size != y.size:
            raise InputError(f"paired samples need equal sizes, got {x.size} and {y.size}")
        return mean_interval(x - y, level, resamples, seed)
    rng = np.random.default_rng(seed)
    boot = (x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
            - y[rng.integers(0, y.size, size=(resamples, y.size))].mean(axis=1))
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size  # unbiased variances of the two means
    boot_var = x.var() / x.size + y.var() / y.size  # what the bootstrap sees (ddof 0)
    estimate = float(x.mean() - y.mean())
    if vx + vy == 0:  # both samples constant: no spread
        return Interval(estimate, estimate, estimate, level)
    dof = float((vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1)))  # Welch-Satterthwaite
    return _interval(boot, estimate, level, math.sqrt((vx + vy) / boot_var), dof)
