"""A power law y = c x^b fitted as a line in log-log space, with an interval that counts seed noise.

One job: the least-squares line log y = a + b log x through a few points (W of them: widths,
budgets), the covariance of (a, b) from the residual scatter and from a bootstrap over the
measurements' seeds, and the forecast at a new x with its interval. It ignores where the
points come from (lr_transfer.py: optimal learning rates per width; compute.py: compute-optimal
sizes per budget).

Interval: Var = Var_regression + Var_bootstrap, the first from the residuals (RSS / (W - p),
p the number of fitted coefficients; 0 when W = p), the second the covariance of the coefficients
refitted on each bootstrap replicate of the points (the caller resamples the seeds behind every
point). The half-width is q * sqrt(Var), q the Student-t quantile with W - p degrees of freedom
when W > p (small W widens it: 4.30 at W = 4, p = 2), else the normal quantile. Failure modes:
two points and no bootstrap give a zero-width interval (refused: NotIdentifiableError).

Prediction interval (`predict_new`): where the forecast is checked against a new *measured*
point (compute.py: the vertex of a held-out IsoFLOP ladder, itself noisy), the interval is the
classical regression prediction interval of a new observation, Var_new = s2 (1 + d' (X'X)^-1 d),
d = (1, log x), s2 = RSS / (W - p), with the Student-t quantile at W - p degrees of freedom
(Seber & Lee 2003, Linear Regression Analysis, Sec. 5.3): exact 95% for points scattered iid
normally about the law in log y. It omits the seed bootstrap: the residual scatter already holds
the seed noise, and adding both covered the held-out vertex in 99.5% of synthetic draws (the
test, tests/forecast/test_compute.py, measures about 95%). W = p has no residual: refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from lmech.errors import NotIdentifiableError

__all__ = ["LogLinearFit", "fit_log_linear"]


@dataclass(frozen=True)
class LogLinearFit:
    """log y = intercept + slope * log x (natural logs); cov: (2, 2) of (intercept, slope)."""

    intercept: float
    slope: float
    cov: np.ndarray
    quantile: float
    fixed_slope: bool
    points: int
    residual_var: float = 0.0  # s2 = RSS / (W - p) of log y (0 when W = p)
    design_inverse: np.ndarray | None = None  # (X'X)^-1 of the fitted coefficients (None when W = p)

    @property
    def slope_interval(self) -> tuple[float, float]:
        half = self.quantile * float(np.sqrt(max(self.cov[1, 1], 0.0)))
        return self.slope - half, self.slope + half

    def log_predict(self, x: int | float) -> tuple[float, float]:
        """(log y, its standard deviation) at x."""
        design = np.array([1.0, np.log(x)])
        return float(self.intercept + self.slope * design[1]), float(np.sqrt(max(design @ self.cov @ design, 0.0)))

    def predict(self, x: int | float) -> tuple[float, float, float]:
        """(y, low, high) at x: the point forecast and its interval (see the module docstring)."""
        mean, sd = self.log_predict(x)
        return float(np.exp(mean)), float(np.exp(mean - self.quantile * sd)), float(np.exp(mean + self.quantile * sd))

    def predict_new(self, x: int | float) -> tuple[float, float, float]:
        """(y, low, high) at x: the prediction interval of a new measured point (see the module docstring).

        Raises NotIdentifiableError when W = p (no residual scatter to size it).
        """
        if self.design_inverse is None:
            raise NotIdentifiableError(f"{self.points} points leave no residual scatter: a prediction interval needs "
                                       f"at least {3 - int(self.fixed_slope)} (e.g. 3 budgets)")
        mean, _ = self.log_predict(x)
        design = np.array([1.0]) if self.fixed_slope else np.array([1.0, np.log(x)])
        half = self.quantile * float(np.sqrt(self.residual_var * (1.0 + design @ self.design_inverse @ design)))
        return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))


def _coefficients(log_x: np.ndarray, log_y: np.ndarray, slope: float | None) -> np.ndarray:
    if slope is not None:
        return np.array([float(np.mean(log_y - slope * log_x)), slope])
    b, a = np.polyfit(log_x, log_y, 1)
    return np.array([a, b])


def fit_log_linear(x, y, boot_y=None, slope: float | None = None, level: float = 0.95) -> LogLinearFit:
    """Fit log y = a + b log x by least squares (b fixed when `slope` is given).

    Args:
        x: (W,) positive abscissae, at least 2 distinct (1 with a fixed slope).
        y: (W,) positive ordinates.
        boot_y: optional (B, W) bootstrap replicates of y (rows with a non-finite entry are skipped).
        slope: fix b (e.g. 0 under muP) and fit only a.
        level: the interval's coverage.

    Raises NotIdentifiableError: too few distinct x, non-positive values, or no spread at all.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise NotIdentifiableError(f"x and y must be equal-length vectors, got {x.shape} and {y.shape}")
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise NotIdentifiableError("a power-law fit needs positive finite x and y")
    p = 1 if slope is not None else 2
    if len(np.unique(x)) < p:
        raise NotIdentifiableError(f"a power-law fit needs at least {p} distinct x values, got {len(np.unique(x))}")
    log_x, log_y = np.log(x), np.log(y)
    theta = _coefficients(log_x, log_y, slope)
    w = len(x)
    cov = np.zeros((2, 2))
    s2, design_inverse = 0.0, None
    if w > p:
        residual = log_y - (theta[0] + theta[1] * log_x)
        s2 = float(residual @ residual) / (w - p)
        if slope is None:
            design = np.stack([np.ones(w), log_x], axis=1)
            design_inverse = np.linalg.inv(design.T @ design)
            cov += s2 * design_inverse
        else:
            design_inverse = np.array([[1.0 / w]])
            cov[0, 0] += s2 / w
    if boot_y is not None:
        boot = np.asarray(boot_y, dtype=float)
        good = boot[np.all(np.isfinite(boot) & (boot > 0), axis=1)]
        if len(good) >= 2:
            coefficients = np.array([_coefficients(log_x, np.log(row), slope) for row in good])
            cov += np.cov(coefficients.T)
    if not np.any(cov):
        raise NotIdentifiableError(f"{w} points and no bootstrap replicates: no interval can be stated")
    quantile = float(stats.t.ppf(0.5 + level / 2, w - p)) if w > p else float(stats.norm.ppf(0.5 + level / 2))
    return LogLinearFit(float(theta[0]), float(theta[1]), cov, quantile, slope is not None, w, s2, design_inverse)
