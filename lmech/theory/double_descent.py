"""Asymptotic test risk of min-norm and ridge least squares on isotropic Gaussian data.

One job: the proportional-limit (n, p -> inf, p/n -> gamma) risk curves that
produce "double descent" in linear regression.  It ignores anisotropic
covariances, misspecified (nonlinear) targets and finite-n corrections
(which are O(1/n) away from gamma = 1 and large near gamma = 1).

Model (shared by every function):

* features ``x ~ N(0, I_p)``, ``n`` training rows, ``gamma = p / n``;
* ``y = x^T beta + eps`` with ``eps ~ N(0, sigma^2)`` and ``||beta|| = r``
  (``signal = r``, ``noise = sigma``);
* risk ``E_x0[(x0^T (beta_hat - beta))^2 | X] = ||beta_hat - beta||^2``
  (excess risk, *excluding* the test noise; ``include_test_noise=True`` adds
  ``sigma^2``, the risk for predicting a fresh noisy ``y0``);
* ridge ``beta_hat = argmin 1/n ||y - X b||^2 + lam ||b||^2
  = (X^T X + n lam I)^{-1} X^T y``; min-norm is its ``lam -> 0+`` limit,
  ``X^+ y``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float, Real

from lmech.errors import InputError

__all__ = ["min_norm_risk", "optimal_ridge_penalty", "ridge_risk"]


def _check(gamma: Float[np.ndarray, "G"], signal: float, noise: float) -> None:
    if np.any(~np.isfinite(gamma)) or np.any(gamma <= 0):
        raise InputError("gamma = p/n must be finite and > 0")
    if not (signal >= 0 and noise >= 0):
        raise InputError(f"signal and noise must be >= 0, got {signal}, {noise}")


def min_norm_risk(
    gamma: Real[np.ndarray, "G"] | Sequence[float] | float,
    *,
    signal: float,
    noise: float,
    include_test_noise: bool = False,
) -> Float[np.ndarray, "G"]:
    """Limiting risk of min-norm ("ridgeless") least squares as a function of ``gamma = p/n``.

    Args:
        gamma: ``(G,)`` array or sequence, or a scalar: aspect ratios ``p/n > 0``.
        signal: ``r = ||beta||`` (units of y per unit x).
        noise: ``sigma``, label-noise standard deviation (units of y).
        include_test_noise: add ``sigma^2`` (risk on a noisy test label).

    Returns:
        ``(G,)`` float64 risk in units of y^2; ``inf`` at ``gamma == 1`` when
        ``noise > 0`` (the interpolation peak).

    Algorithm:
        Closed form. ``gamma < 1``: ``sigma^2 gamma / (1 - gamma)`` (variance
        only; least squares is unbiased). ``gamma > 1``:
        ``r^2 (1 - 1/gamma) + sigma^2 / (gamma - 1)`` (bias from the
        unseen ``p - n`` directions plus variance). O(G).

    Source:
        Hastie, Montanari, Rosset & Tibshirani 2022, "Surprises in
        high-dimensional ridgeless least squares interpolation", Ann. Statist.
        50(2), Theorem 1 (isotropic features), Eq. (9) in arXiv:1903.08560.

    Failure modes:
        Asymptotic: at finite n the expected risk for ``gamma < 1`` is exactly
        ``sigma^2 p / (n - p - 1)`` (inverse-Wishart mean), so near
        ``gamma = 1`` finite samples deviate strongly. Assumes isotropic
        Gaussian-like features; a correlated design changes the curve.
    """
    g = np.atleast_1d(np.asarray(gamma, dtype=np.float64))
    _check(g, signal, noise)
    r2, s2 = signal**2, noise**2
    with np.errstate(divide="ignore", invalid="ignore"):
        under = s2 * g / (1.0 - g)
        over = r2 * (1.0 - 1.0 / g) + s2 / (g - 1.0)
        risk = np.where(g < 1, under, np.where(g > 1, over, np.inf if s2 > 0 else r2 * 0.0))
    return risk + (s2 if include_test_noise else 0.0)


def _mp_stieltjes(
    g: Float[np.ndarray, "*G"], lam: float
) -> tuple[Float[np.ndarray, "*G"] | float, Float[np.ndarray, "*G"] | float]:
    """``m(-lam)`` and ``m'(-lam)`` of the Marchenko-Pastur law with ratio ``g``, variance 1.

    ``m(z) = int dF_g(s) / (s - z)`` solves ``g z m^2 - (1 - g - z) m + 1 = 0``.
    At ``z = -lam < 0``: ``m = (-(1-g+lam) + sqrt(Delta)) / (2 g lam)`` with
    ``Delta = (1-g+lam)^2 + 4 g lam``, evaluated in the cancellation-free form
    for each sign of ``1-g+lam``; implicit differentiation gives
    ``m' = (g m^2 + m) / sqrt(Delta)``. A 0-d ``g`` can give numpy scalars.
    """
    b = 1.0 - g + lam
    sq = np.sqrt(b * b + 4.0 * g * lam)
    m = np.where(b > 0, 2.0 / (b + sq), (sq - b) / (2.0 * g * lam))
    dm = (g * m * m + m) / sq
    return m, dm


def ridge_risk(
    gamma: Real[np.ndarray, "G"] | Sequence[float] | float,
    lam: float,
    *,
    signal: float,
    noise: float,
    include_test_noise: bool = False,
) -> Float[np.ndarray, "G"]:
    """Limiting risk of ridge regression with penalty ``lam > 0`` as a function of ``gamma``.

    Args:
        gamma: ``(G,)`` array or sequence, or a scalar: aspect ratios ``p/n > 0``.
        lam: ridge penalty ``> 0`` in the ``1/n ||y - Xb||^2 + lam ||b||^2``
            convention (so ``n * lam`` is added to ``X^T X``).
        signal: ``r = ||beta||``.
        noise: ``sigma``.
        include_test_noise: add ``sigma^2``.

    Returns:
        ``(G,)`` float64 risk in units of y^2.

    Algorithm:
        ``R = r^2 lam^2 m'(-lam) + sigma^2 gamma (m(-lam) - lam m'(-lam))``
        with ``m`` the Stieltjes transform of the Marchenko-Pastur law of
        ``X^T X / n`` (closed form, see ``_mp_stieltjes``): first term bias,
        second variance. O(G).

    Source:
        Hastie et al. 2022 (Ann. Statist.), Section 5, Theorem 5 (ridge,
        isotropic features, arXiv:1903.08560); Dobriban & Wager 2018,
        "High-dimensional asymptotics of prediction: ridge regression and
        classification", Ann. Statist. 46(1), Theorem 2.1. As ``lam -> 0+``
        it tends to ``min_norm_risk``; it is minimised at
        ``lam* = sigma^2 gamma / r^2`` (``optimal_ridge_penalty``).

    Failure modes:
        Loses about ``eps / lam`` relative accuracy for ``gamma > 1`` through
        cancellation of two ``O(1/lam)`` terms, so use ``min_norm_risk`` for
        ``lam < 1e-8``. Same asymptotic caveats as ``min_norm_risk``.
    """
    g = np.atleast_1d(np.asarray(gamma, dtype=np.float64))
    _check(g, signal, noise)
    if not (np.isfinite(lam) and lam > 0):
        raise InputError(f"lam must be finite and > 0 (use min_norm_risk for lam = 0), got {lam}")
    m, dm = _mp_stieltjes(g, np.float64(lam))
    risk = signal**2 * lam**2 * dm + noise**2 * g * (m - lam * dm)
    return risk + (noise**2 if include_test_noise else 0.0)


def optimal_ridge_penalty(gamma: float, *, signal: float, noise: float) -> float:
    """Risk-minimising ridge penalty ``lam* = sigma^2 gamma / r^2`` (same convention as ``ridge_risk``).

    Source:
        Dobriban & Wager 2018, Theorem 2.1 (optimal ``lam = gamma / alpha^2``
        with ``alpha^2 = r^2 / sigma^2``); Hastie et al. 2022, Section 5.

    Failure modes:
        ``signal = 0`` gives ``inf`` (predict zero); raises for ``gamma <= 0``.
    """
    _check(np.atleast_1d(np.float64(gamma)), signal, noise)
    return float(noise**2 * gamma / signal**2) if signal > 0 else float("inf")
