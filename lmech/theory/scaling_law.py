"""Fit parametric scaling laws (Chinchilla "Approach 3") and forecast with bootstrap intervals.

One job: estimate ``L(N, D) = E + A / N^alpha + B / D^beta`` (or the
one-variable ``L(x) = E + A x^-alpha``) from measured losses, refuse to
answer when the data cannot identify it, and turn the fit into a
compute-optimal allocation or a forecast.  It ignores other functional forms
(broken power laws, data-repetition terms), heteroscedastic weighting and
which runs "should" be excluded (the caller chooses the rows).

Fitting (both laws): minimise ``sum_n Huber_delta(LSE(...) - log L_n)`` over
``(a, b, e, alpha, beta)`` with ``A = e^a, B = e^b, E = e^e`` by unconstrained
BFGS from a grid of initialisations, keeping the lowest objective (a result
outside the parameter box counts as not identified); percentile
bootstrap over rows for intervals (each replicate refitted from the point
estimate and the next best starts).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from jaxtyping import Float, Real

from lmech.errors import InputError
from lmech.theory import _lse_fit
from lmech.theory._lse_fit import NotIdentifiableError

__all__ = [
    "Allocation",
    "Forecast",
    "NotIdentifiableError",
    "PowerLawFit",
    "ScalingLawFit",
    "ScalingLawParams",
    "compute_optimal_allocation",
    "fit_power_law",
    "fit_scaling_law",
]

_NAMES = ("E", "A", "B", "alpha", "beta")
_COND_MAX = 1e8  # Jacobian condition number beyond which parameters are declared traded off


@dataclass(frozen=True)
class ScalingLawFit:
    """Point estimates and bootstrap intervals for ``L = E + A/N^alpha + B/D^beta``.

    Attributes:
        E, A, B, alpha, beta: point estimates (loss units; N and D in the
            caller's units, e.g. parameters and tokens).
        objective: Huber objective at the optimum (sum over rows).
        n_points: rows used.
        level: central coverage of ``intervals`` (e.g. 0.95).
        intervals: ``{name: (lo, hi)}`` percentile bootstrap intervals
            (empty when ``bootstrap=0``).
        bootstrap: ``(K, 5)`` replicate estimates in the order
            ``(E, A, B, alpha, beta)``; ``K = 0`` without bootstrap.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    n_points: int
    level: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))

    def loss(self, n: Float[np.ndarray, "G"], d: Float[np.ndarray, "G"]) -> Float[np.ndarray, "G"]:
        """Predicted loss at parameter counts ``n`` and token counts ``d``."""
        return self.E + self.A / np.asarray(n, float) ** self.alpha + self.B / np.asarray(d, float) ** self.beta


@runtime_checkable
class ScalingLawParams(Protocol):
    """What ``compute_optimal_allocation`` reads: the five law parameters (``ScalingLawFit`` has them).

    ``bootstrap`` (``(K, 5)``) and ``level`` are read too when present.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float


@dataclass(frozen=True)
class Allocation:
    """Compute-optimal split of ``C = 6 N D`` FLOPs; ``*_interval`` are ``(G, 2)`` or None."""

    compute: np.ndarray
    n_opt: np.ndarray
    d_opt: np.ndarray
    loss: np.ndarray
    n_interval: np.ndarray | None = None
    d_interval: np.ndarray | None = None
    loss_interval: np.ndarray | None = None


def _allocation_point(p: np.ndarray, compute: np.ndarray):
    """p = (E, A, B, alpha, beta) broadcastable; returns N_opt, D_opt, loss."""
    e_, a_, b_, al, be = (p[..., i, None] for i in range(5))
    g = (al * a_ / (be * b_)) ** (1.0 / (al + be))
    n = g * (compute / 6.0) ** (be / (al + be))
    d = (compute / 6.0) ** (al / (al + be)) / g
    return n, d, e_ + a_ / n**al + b_ / d**be


def compute_optimal_allocation(
    params: ScalingLawParams, compute: Real[np.ndarray, "G"] | Sequence[float] | float
) -> Allocation:
    """Loss-minimising ``(N, D)`` under ``C = 6 N D``, with bootstrap intervals when available.

    Args:
        params: a ``ScalingLawFit`` (or anything with ``E, A, B, alpha, beta``
            attributes; intervals need ``bootstrap`` and ``level``).
        compute: ``(G,)`` array or sequence, or a scalar: training budgets
            in FLOPs.

    Returns:
        ``Allocation`` with ``(G,)`` arrays ``n_opt`` (parameters), ``d_opt``
        (tokens) and ``loss``; intervals ``(G, 2)`` from the bootstrap
        replicates at ``params.level``, else None.

    Algorithm:
        ``N_opt = G (C/6)^{beta/(alpha+beta)}``, ``D_opt = G^{-1}
        (C/6)^{alpha/(alpha+beta)}``, ``G = (alpha A / (beta B))^{1/(alpha+beta)}``;
        the same formula applied to every bootstrap replicate gives the
        percentile intervals. O(G K).

    Source:
        Hoffmann et al. 2022, "Training compute-optimal large language
        models", Eq. (4) and Appendix D.2; Besiroglu, Erdil, Barnett & You
        2024, "Chinchilla scaling: a replication attempt", Section 3.

    Failure modes:
        Extrapolating far beyond the fitted compute range compounds exponent
        uncertainty: the intervals widen accordingly but assume the law form
        is right. ``C = 6 N D`` is the dense-transformer FLOP approximation.
    """
    c = np.atleast_1d(np.asarray(compute, dtype=np.float64))
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
        raise InputError("compute budgets must be finite and > 0")
    p = np.array([getattr(params, k) for k in _NAMES], dtype=np.float64)
    n, d, loss = (x[0] for x in _allocation_point(p[None, :], c))
    boot = getattr(params, "bootstrap", np.zeros((0, 5)))
    if boot.shape[0] == 0:
        return Allocation(compute=c, n_opt=n, d_opt=d, loss=loss)
    q = [50 * (1 - params.level), 50 * (1 + params.level)]
    bn, bd, bl = _allocation_point(boot, c)  # (K, G)
    ints = [np.percentile(b, q, axis=0).T for b in (bn, bd, bl)]
    return Allocation(compute=c, n_opt=n, d_opt=d, loss=loss,
                      n_interval=ints[0], d_interval=ints[1], loss_interval=ints[2])


def _hoffmann_grid() -> np.ndarray:
    """Hoffmann et al. (App. D.2) / Besiroglu et al. grid, as theta = (a, b, e, alpha, beta)."""
    exps = [0.0, 0.5, 1.0, 1.5, 2.0]
    es = [-1.0, -0.5, 0.0, 0.5, 1.0]
    abs_ = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    return np.array([(a, b, e, al, be) for al, be, e, a, b in itertools.product(exps, exps, es, abs_, abs_)])


def _bootstrap(logx, logy, theta0, starts, delta, n_boot, seed, to_named):
    rng = np.random.default_rng(seed)
    n = logy.shape[0]
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        lx, ly = logx[idx], logy[idx]
        if any(np.unique(lx[:, j]).size < 3 for j in range(lx.shape[1])):
            continue  # degenerate resample: cannot refit, skip it
        fit = _lse_fit.minimise(np.vstack([theta0, starts]), lx, ly, delta)
        out.append(to_named(fit.theta))
    return np.array(out).reshape(-1, len(to_named(theta0)))


def _intervals(boot: np.ndarray, names, level: float) -> dict[str, tuple[float, float]]:
    if boot.shape[0] == 0:
        return {}
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(names)}


def fit_scaling_law(
    N: Float[np.ndarray, "R"],
    D: Float[np.ndarray, "R"],
    L: Float[np.ndarray, "R"],
    *,
    huber_delta: float = 1e-3,
    bootstrap: int = 100,
    n_starts: int | None = 16,
    bootstrap_starts: int = 2,
    level: float = 0.95,
    seed: int = 0,
) -> ScalingLawFit:
    """Fit ``L = E + A/N^alpha + B/D^beta`` to R runs (Chinchilla Approach 3).

    Args:
        N: ``(R,)`` model sizes (parameters), ``> 0``.
        D: ``(R,)`` training tokens, ``> 0``.
        L: ``(R,)`` final losses (nats/token), ``> 0``.
        huber_delta: Huber threshold on log-loss residuals (paper: 1e-3).
        bootstrap: number of row-resampling replicates (0 = no intervals).
        n_starts: BFGS starts, the best of the paper's 4500-point grid by
            objective value; ``None`` runs all 4500 (the paper's procedure,
            4500 / n_starts times the optimizer runs; how few starts suffice
            on the Chinchilla data: bench/NOTES.md, `scaling_law.fit_scaling_law`).
        bootstrap_starts: extra starts per replicate besides the point estimate.
        level: central coverage of the percentile intervals.
        seed: seed of the bootstrap resampling.

    Returns:
        ``ScalingLawFit``.

    Algorithm:
        Objective ``sum_r Huber(LSE(a - alpha log N_r, b - beta log D_r, e)
        - log L_r)``; grid ``alpha, beta in {0, .5, ..., 2}``,
        ``e in {-1, -.5, ..., 1}``, ``a, b in {0, 5, ..., 25}``; unconstrained
        BFGS with analytic gradients, the optimum then checked against a wide
        box; percentile bootstrap.
        Cost ~ (n_starts + bootstrap * (1 + bootstrap_starts)) BFGS runs
        of O(R) per iteration.

    Source:
        Hoffmann et al. 2022, Section 3.3 and Appendix D.2 (Eq. 2 loss form);
        Besiroglu et al. 2024, "Chinchilla scaling: a replication attempt"
        (arXiv:2404.10102), Section 2 and Appendix (same objective, bootstrap).

    Failure modes:
        Raises ``NotIdentifiableError`` (an ``InputError``) instead of
        returning a misleading answer when: fewer than 10 rows (2 per
        parameter); N or D takes fewer than 3 distinct values; the optimum
        sits on the search box (e.g. ``alpha -> 0`` or ``E -> 0``); or the
        Jacobian of the fitted log-loss is rank-deficient (condition number
        > 1e8 after column scaling), i.e. parameters trade off exactly.
        Huber with a tiny delta is a robust (median-like) fit; it does not
        model heteroscedastic noise.
    """
    n_, d_, l_ = (np.asarray(v, dtype=np.float64) for v in (N, D, L))
    _lse_fit.check_data({"N": n_, "D": d_}, l_, n_params=5, min_distinct=3)
    if not (0 < level < 1):
        raise InputError(f"level must be in (0, 1), got {level}")
    logx = np.stack([np.log(n_), np.log(d_)], axis=1)
    logy = np.log(l_)
    starts = _lse_fit.best_starts(_hoffmann_grid(), logx, logy, huber_delta, n_starts)
    best = _lse_fit.minimise(starts, logx, logy, huber_delta)
    _lse_fit.check_identified(best.theta, logx, ["log A", "log B", "log E", "alpha", "beta"], _COND_MAX)

    def named(t):  # theta (a, b, e, alpha, beta) -> (E, A, B, alpha, beta)
        return np.array([np.exp(t[2]), np.exp(t[0]), np.exp(t[1]), t[3], t[4]])

    boot = _bootstrap(logx, logy, best.theta, starts[:bootstrap_starts], huber_delta, bootstrap, seed, named)
    p = named(best.theta)
    return ScalingLawFit(*(float(v) for v in p), objective=best.objective, n_points=int(l_.size),
                         level=level, intervals=_intervals(boot, _NAMES, level), bootstrap=boot)


@dataclass(frozen=True)
class Forecast:
    """Forecast of ``L(x)``: ``(G,)`` arrays; ``lo``/``hi`` NaN without bootstrap."""

    x: np.ndarray
    point: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True)
class PowerLawFit:
    """Fit of ``L(x) = E + A x^-alpha``; fields as in ``ScalingLawFit`` (bootstrap order E, A, alpha)."""

    E: float
    A: float
    alpha: float
    objective: float
    n_points: int
    level: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def forecast(self, x_new: Real[np.ndarray, "G"] | Sequence[float] | float) -> Forecast:
        """Point prediction and percentile bootstrap interval (at ``level``) at ``x_new``."""
        x = np.atleast_1d(np.asarray(x_new, dtype=np.float64))
        if np.any(~np.isfinite(x)) or np.any(x <= 0):
            raise InputError("forecast points must be finite and > 0")
        point = self.E + self.A * x ** (-self.alpha)
        if self.bootstrap.shape[0] == 0:
            nan = np.full_like(x, np.nan)
            return Forecast(x=x, point=point, lo=nan, hi=nan.copy())
        b = self.bootstrap
        curves = b[:, :1] + b[:, 1:2] * x[None, :] ** (-b[:, 2:3])
        lo, hi = np.percentile(curves, [50 * (1 - self.level), 50 * (1 + self.level)], axis=0)
        return Forecast(x=x, point=point, lo=lo, hi=hi)


def _power_grid(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Data-adaptive starts (a, e, alpha): the law's scale is the caller's units, not Chinchilla's."""
    e0 = logy.min()
    rows = []
    for alpha in (0.1, 0.25, 0.5, 1.0, 2.0):
        for de in (-4.0, -2.0, -1.0, -0.3, -0.05):
            for da in (-2.0, 0.0, 2.0):
                a = np.log(max(np.exp(logy.max()) - np.exp(e0 + de), 1e-12)) + alpha * logx.min() + da
                rows.append((a, e0 + de, alpha))
    return np.array(rows)


def fit_power_law(
    x: Float[np.ndarray, "R"],
    y: Float[np.ndarray, "R"],
    *,
    huber_delta: float = 1e-3,
    bootstrap: int = 100,
    n_starts: int | None = 16,
    bootstrap_starts: int = 2,
    level: float = 0.95,
    seed: int = 0,
) -> PowerLawFit:
    """Fit ``L(x) = E + A x^-alpha`` (e.g. loss vs step, or vs model size at fixed data).

    Args:
        x: ``(R,)`` positive abscissae (steps, parameters, tokens, FLOPs).
        y: ``(R,)`` positive losses.
        huber_delta, bootstrap, n_starts, bootstrap_starts, level, seed: as in
            ``fit_scaling_law``.

    Returns:
        ``PowerLawFit`` (use ``.forecast(x_new)``).

    Algorithm:
        Same Huber-on-log-loss LSE objective as ``fit_scaling_law`` with one
        covariate, ``LSE(a - alpha log x, e)``; starts are a 75-point grid
        placed relative to the data (``E`` below ``min y``, ``alpha`` in
        0.1..2) since the data's units are arbitrary; BFGS; bootstrap.

    Source:
        Hoffmann et al. 2022, Appendix D.2 (objective); Kaplan et al. 2020,
        "Scaling laws for neural language models", Eq. (1.1)-(1.3) (the
        one-variable form ``(x_c / x)^alpha`` plus an irreducible term).

    Failure modes:
        Raises ``NotIdentifiableError`` for fewer than 6 rows, fewer than 4
        distinct ``x``, an optimum on the box (notably ``E -> 0``: the curve
        has not bent, so the asymptote is unknown and a forecast would be
        the pure power law's guess) or a degenerate Jacobian.
    """
    x_, y_ = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    _lse_fit.check_data({"x": x_}, y_, n_params=3, min_distinct=4)
    if not (0 < level < 1):
        raise InputError(f"level must be in (0, 1), got {level}")
    logx, logy = np.log(x_)[:, None], np.log(y_)
    starts = _lse_fit.best_starts(_power_grid(logx, logy), logx, logy, huber_delta, n_starts)
    best = _lse_fit.minimise(starts, logx, logy, huber_delta)
    _lse_fit.check_identified(best.theta, logx, ["log A", "log E", "alpha"], _COND_MAX)

    def named(t):  # (a, e, alpha) -> (E, A, alpha)
        return np.array([np.exp(t[1]), np.exp(t[0]), t[2]])

    boot = _bootstrap(logx, logy, best.theta, starts[:bootstrap_starts], huber_delta, bootstrap, seed, named)
    p = named(best.theta)
    return PowerLawFit(*(float(v) for v in p), objective=best.objective, n_points=int(y_.size),
                       level=level, intervals=_intervals(boot, ("E", "A", "alpha"), level), bootstrap=boot)
