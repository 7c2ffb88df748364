"""Benign overfitting of min-norm interpolation: effective ranks and the interpolator's excess risk.

One job: the quantities of Bartlett, Long, Lugosi & Tsigler (2020) that decide
whether the minimum-norm interpolator of noisy labels is consistent (excess
risk -> 0, "benign") for a Gaussian design with covariance diag(lambda), and the
deterministic-equivalent value of that risk at finite n. It ignores ridge
penalties, non-Gaussian designs and the universal constants of the bounds.

Model (shared by every function): rows x ~ N(0, diag(lambda)) in R^p, p > n,
y = x.beta + eps with eps ~ N(0, sigma^2); the min-norm interpolator
beta_hat = X^T (X X^T)^{-1} y; excess risk (beta_hat - beta)^T Sigma (beta_hat - beta)
(units of y^2, test noise excluded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from lmech.errors import InputError

__all__ = ["effective_ranks", "critical_index", "BenignTerms", "benign_terms", "MinNormRisk",
           "min_norm_excess_risk", "min_norm_interpolator", "exponential_plus_isotropic_spectrum"]


def _spectrum(spectrum) -> np.ndarray:
    lam = np.asarray(spectrum, dtype=float)
    if lam.ndim != 1 or lam.size == 0:
        raise InputError("spectrum must be a non-empty 1-d array of eigenvalues")
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise InputError("spectrum eigenvalues must be finite and > 0")
    if np.any(np.diff(lam) > 1e-12 * lam[0]):
        raise InputError("spectrum must be sorted in non-increasing order")
    return lam


def effective_ranks(spectrum: Float[np.ndarray, " P"]) -> tuple[Float[np.ndarray, " P"], Float[np.ndarray, " P"]]:
    """The two effective ranks r_k and R_k of a covariance, for k = 0 .. p-1.

    Args:
        spectrum: (P,) eigenvalues lambda_1 >= lambda_2 >= ... > 0 of Sigma.

    Returns:
        (r, R), each (P,) float64, dimensionless:
        r_k = sum_{i>k} lambda_i / lambda_{k+1},  R_k = (sum_{i>k} lambda_i)^2 / sum_{i>k} lambda_i^2.

    Algorithm: reversed cumulative sums, O(P).

    Source: Bartlett, Long, Lugosi & Tsigler (2020), "Benign overfitting in
    linear regression", PNAS, Definition 3.
    """
    lam = _spectrum(spectrum)
    tail = np.cumsum(lam[::-1])[::-1]  # tail[k] = sum_{i >= k} lambda_i (0-based) = sum_{i>k} (1-based)
    tail_sq = np.cumsum((lam**2)[::-1])[::-1]
    return tail / lam, tail**2 / tail_sq


def critical_index(spectrum: Float[np.ndarray, " P"], n: int, b: float = 1.0) -> int | None:
    """k* = min{k >= 0 : r_k(Sigma) >= b n}, or None when no k qualifies.

    Source: Bartlett et al. (2020), Theorem 4 (b is their universal constant;
    this module uses b = 1 unless told).
    """
    if n < 1 or not b > 0:
        raise InputError(f"need n >= 1 and b > 0, got n={n}, b={b}")
    r, _ = effective_ranks(spectrum)
    hits = np.nonzero(r >= b * n)[0]
    return int(hits[0]) if len(hits) else None


@dataclass(frozen=True)
class BenignTerms:
    """The three ratios whose vanishing makes a covariance sequence benign (Bartlett et al. 2020, Thm 4/Def. 7).

    Attributes:
        n: sample size.
        k_star: critical index (None: r_k < b n for every k, not benign at this n).
        r0_over_n: r_0 / n (controls the bias term).
        k_star_over_n: k* / n (variance, head part; inf when k* is None).
        n_over_R: n / R_{k*} (variance, tail part; inf when k* is None).
        variance_bound: k*/n + n/R_{k*}, the variance bound up to its constant.
    """

    n: int
    k_star: int | None
    r0_over_n: float
    k_star_over_n: float
    n_over_R: float

    @property
    def variance_bound(self) -> float:
        return self.k_star_over_n + self.n_over_R


def benign_terms(spectrum: Float[np.ndarray, " P"], n: int, b: float = 1.0) -> BenignTerms:
    """r_0/n, k*/n and n/R_{k*} for one covariance and sample size (see BenignTerms).

    Source: Bartlett et al. (2020), Theorem 4: with probability >= 1 - delta the
    excess risk is within constants of ||beta||^2 ||Sigma|| max(sqrt(r_0/n), r_0/n)
    + sigma^2 (k*/n + n/R_{k*}) (upper bound), and the variance term is also a
    lower bound.
    """
    r, big_r = effective_ranks(spectrum)
    k = critical_index(spectrum, n, b)
    if k is None:
        return BenignTerms(n, None, float(r[0] / n), math.inf, math.inf)
    return BenignTerms(n, k, float(r[0] / n), k / n, float(n / big_r[k]))


@dataclass(frozen=True)
class MinNormRisk:
    """Deterministic-equivalent excess risk of the min-norm interpolator (units of y^2).

    Attributes:
        bias, variance: the two parts; total = bias + variance.
        kappa: the effective regularization solving sum_i lambda_i / (lambda_i + kappa) = n.
        df2: sum_i lambda_i^2 / (lambda_i + kappa)^2 (< n).
    """

    bias: float
    variance: float
    kappa: float
    df2: float

    @property
    def total(self) -> float:
        return self.bias + self.variance


def min_norm_excess_risk(spectrum: Float[np.ndarray, " P"], beta: Float[np.ndarray, " P"], n: int,
                         noise: float) -> MinNormRisk:
    """Excess risk of the min-norm interpolator on n Gaussian rows with covariance diag(spectrum).

    Args:
        spectrum: (P,) eigenvalues of Sigma (non-increasing, > 0), P > n.
        beta: (P,) true coefficients in the eigenbasis (units of y per unit x).
        n: sample size (1 <= n < P).
        noise: sigma, label-noise standard deviation (units of y).

    Returns:
        MinNormRisk with bias = kappa^2 sum beta_i^2 lambda_i / (lambda_i + kappa)^2 * n / (n - df2)
        and variance = sigma^2 df2 / (n - df2).

    Algorithm: kappa by bisection on log kappa (the left side is decreasing
    in kappa), 200 halvings; O(200 P).

    Source: the ridgeless limit of the deterministic equivalent of ridge
    regression with general covariance: Hastie, Montanari, Rosset &
    Tibshirani (2019), "Surprises in high-dimensional ridgeless least squares
    interpolation", Sec. 3 (general Sigma; their Theorem for the min-norm
    interpolator with correlated features); the same form is Bach (2023),
    "High-dimensional analysis of double descent", eqs. for the ridge limit.
    For Sigma = I it reduces to the isotropic closed form
    sigma^2/(gamma-1) + r^2 (1 - 1/gamma) (lmech.theory.double_descent).

    Failure modes: an asymptotic (n, P -> inf) equivalent; at finite n it is
    off by O(1/n) relative, more when few eigenvalues dominate (n < 30).
    """
    lam = _spectrum(spectrum)
    beta = np.asarray(beta, dtype=float)
    if beta.shape != lam.shape:
        raise InputError(f"beta has shape {beta.shape}, the spectrum {lam.shape}")
    if not 1 <= n < lam.size:
        raise InputError(f"min-norm interpolation needs 1 <= n < p = {lam.size}, got n={n}")
    if not noise >= 0:
        raise InputError(f"noise must be >= 0, got {noise}")
    lo, hi = math.log(lam[-1]) - 60.0, math.log(lam.sum() / n * 2.0 + lam[0])  # sum > n at lo, < n at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sum(lam / (lam + math.exp(mid))) > n:
            lo = mid
        else:
            hi = mid
    kappa = math.exp(0.5 * (lo + hi))
    shrink = lam / (lam + kappa)
    df2 = float(np.sum(shrink**2))
    inflation = n / (n - df2)
    bias = float(kappa**2 * np.sum(beta**2 * lam / (lam + kappa) ** 2) * inflation)
    variance = float(noise**2 * df2 / (n - df2))
    return MinNormRisk(bias, variance, kappa, df2)


def min_norm_interpolator(x: Float[np.ndarray, "N P"], y: Float[np.ndarray, " N"]) -> Float[np.ndarray, " P"]:
    """beta_hat = X^T (X X^T)^{-1} y, the least-norm solution of X b = y (N < P, X of full row rank).

    Algorithm: Cholesky of the (N, N) Gram matrix in float64; O(N^2 P). Falls
    back to lstsq (SVD) when the Gram matrix is numerically singular.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise InputError(f"need x (N, P) and y (N,), got {x.shape} and {y.shape}")
    gram = x @ x.T
    try:
        chol = np.linalg.cholesky(gram)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(x, y, rcond=None)[0]
    return x.T @ alpha


def exponential_plus_isotropic_spectrum(p: int, tail_trace: float, decay: float = 1.0) -> Float[np.ndarray, " P"]:
    """lambda_k = exp(-(k-1)/decay) + tail_trace/p for k = 1..p (non-increasing, float64).

    Source: the finite-dimensional example of Bartlett et al. (2020),
    Theorem 6: lambda_k = gamma_k + eps_n (k <= p_n) with gamma_k = Theta(exp(-k/tau));
    benign iff p_n = omega(n) and n e^{-o(n)} = eps_n p_n = o(n).
    """
    if p < 1 or not tail_trace > 0 or not decay > 0:
        raise InputError(f"need p >= 1, tail_trace > 0 and decay > 0, got {p}, {tail_trace}, {decay}")
    k = np.arange(p, dtype=float)
    return np.exp(-k / decay) + tail_trace / p
