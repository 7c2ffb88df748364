"""Fit a scaling law whose model-size and data-size terms combine as a p-norm, and forecast from it.

One job: estimate ``L(N, D) = E + ((A / N^alpha)^(1/p) + (B / D^beta)^(1/p))^p``
from measured losses, with bootstrap intervals, and refuse to answer when the
data cannot identify it. ``p = 1`` is the additive Chinchilla law
(``scaling_law.fit_scaling_law``); ``p -> 0`` is the bottleneck law
``E + max(A / N^alpha, B / D^beta)`` of the quanta picture (Michaud et al.
2023); Kaplan et al. 2020, Eq. (1.5), ``L = ((N_c / N)^(alpha_N / alpha_D) +
D_c / D)^alpha_D``, is the case ``E = 0, p = beta``. The coupling p lets the
data say how the two bottlenecks interact instead of assuming they add. It
ignores heteroscedastic weighting and which rows "should" be excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float
from scipy.optimize import least_squares

from lmech.errors import InputError, NotIdentifiableError
from lmech.theory import _lse_fit
from lmech.theory.scaling_law import Allocation, compute_optimal_allocation

__all__ = ["CoupledScalingLawFit", "fit_coupled_scaling_law"]

_NAMES = ("E", "A", "B", "alpha", "beta", "p")
_THETA_NAMES = ("log E", "log A", "log B", "alpha", "beta", "log p")
# theta = (log E, log A, log B, alpha, beta, log p): a box wide enough never to bind for a sensible fit
_LOWER = np.array([-30.0, -30.0, -30.0, 1e-3, 1e-3, np.log(0.02)])
_UPPER = np.array([30.0, 80.0, 80.0, 5.0, 5.0, np.log(50.0)])
_COND_MAX = 1e8


def _parts(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray):
    e, a, b, alpha, beta, q = theta
    p = np.exp(q)
    u = (a - alpha * log_n) / p
    v = (b - beta * log_d) / p
    m = np.logaddexp(u, v)
    g = p * m  # log of the reducible part
    return e, p, u, v, m, g, np.logaddexp(e, g)


def _log_prediction(theta, log_n, log_d):
    return _parts(theta, log_n, log_d)[-1]


def _jacobian(theta, log_n, log_d) -> np.ndarray:
    """(R, 6) derivative of log L_hat with respect to theta (analytic)."""
    e, p, u, v, m, g, log_l = _parts(theta, log_n, log_d)
    w_e = np.exp(e - log_l)  # share of E in L_hat
    w_g = 1.0 - w_e
    s_u = np.exp(u - m)  # share of the N term inside the p-norm
    s_v = 1.0 - s_u
    return np.stack([w_e, w_g * s_u, w_g * s_v, -w_g * s_u * log_n, -w_g * s_v * log_d,
                     w_g * p * (m - s_u * u - s_v * v)], axis=1)


@dataclass(frozen=True)
class CoupledScalingLawFit:
    """Point estimates and bootstrap intervals for ``E + ((A/N^alpha)^(1/p) + (B/D^beta)^(1/p))^p``.

    Attributes:
        E, A, B, alpha, beta, p: point estimates (loss units; N, D in the caller's units).
        objective: robust (Huber) cost at the optimum.
        n_points: rows used.
        level: central coverage of ``intervals``.
        intervals: ``{name: (lo, hi)}`` percentile bootstrap intervals (empty without bootstrap).
        bootstrap: ``(K, 6)`` replicate ``theta`` vectors (log E, log A, log B, alpha, beta, log p).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    p: float
    objective: float
    n_points: int
    level: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    bootstrap: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    @property
    def theta(self) -> np.ndarray:
        return np.array([np.log(self.E), np.log(self.A), np.log(self.B), self.alpha, self.beta, np.log(self.p)])

    def loss(self, n: Float[np.ndarray, "G"], d: Float[np.ndarray, "G"]) -> Float[np.ndarray, "G"]:
        """Predicted loss at model sizes ``n`` and data sizes ``d``."""
        log_n, log_d = _log_sizes(n, d)
        return np.exp(_log_prediction(self.theta, log_n, log_d))

    def interval(self, n: Float[np.ndarray, "G"], d: Float[np.ndarray, "G"]) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap interval (at ``level``) of the predicted loss, each ``(G,)``; NaN without bootstrap."""
        log_n, log_d = _log_sizes(n, d)
        if self.bootstrap.shape[0] == 0:
            nan = np.full(log_n.shape, np.nan)
            return nan, nan.copy()
        curves = np.exp(np.stack([_log_prediction(t, log_n, log_d) for t in self.bootstrap]))
        lo, hi = np.percentile(curves, [50 * (1 - self.level), 50 * (1 + self.level)], axis=0)
        return lo, hi

    def allocate(self, compute) -> Allocation:
        """Loss-minimising ``(N, D)`` under ``C = 6 N D`` FLOPs, with bootstrap intervals when available.

        Algorithm: at fixed E and p, minimising the loss is minimising
        ``A^(1/p) N^(-alpha/p) + B^(1/p) D^(-beta/p)``, the Chinchilla problem
        with ``(A, B, alpha, beta) -> (A^(1/p), B^(1/p), alpha/p, beta/p)``; so
        ``N_opt ∝ C^(beta/(alpha+beta))`` as for the additive law
        (``scaling_law.compute_optimal_allocation``, Hoffmann et al. 2022 Eq. 4),
        the loss at the optimum from the coupled law; each bootstrap replicate
        likewise for the percentile intervals.
        """
        c = np.atleast_1d(np.asarray(compute, dtype=np.float64))
        if np.any(~np.isfinite(c)) or np.any(c <= 0):
            raise InputError("compute budgets must be finite and > 0")

        def point(theta):
            e, a, b, alpha, beta, p = np.exp(theta[0]), np.exp(theta[1]), np.exp(theta[2]), *theta[3:5], \
                np.exp(theta[5])
            reduced = _Additive(e, a ** (1 / p), b ** (1 / p), alpha / p, beta / p)
            alloc = compute_optimal_allocation(reduced, c)
            return alloc.n_opt, alloc.d_opt, np.exp(_log_prediction(theta, np.log(alloc.n_opt), np.log(alloc.d_opt)))

        n, d, loss = point(self.theta)
        if self.bootstrap.shape[0] == 0:
            return Allocation(compute=c, n_opt=n, d_opt=d, loss=loss)
        reps = np.stack([np.stack(point(t)) for t in self.bootstrap])  # (K, 3, G)
        q = [50 * (1 - self.level), 50 * (1 + self.level)]
        ints = [np.percentile(reps[:, i], q, axis=0).T for i in range(3)]
        return Allocation(compute=c, n_opt=n, d_opt=d, loss=loss,
                          n_interval=ints[0], d_interval=ints[1], loss_interval=ints[2])


@dataclass(frozen=True)
class _Additive:
    """E, A, B, alpha, beta of an additive law (what ``compute_optimal_allocation`` reads)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float


def _log_sizes(n, d) -> tuple[np.ndarray, np.ndarray]:
    n_, d_ = np.atleast_1d(np.asarray(n, np.float64)), np.atleast_1d(np.asarray(d, np.float64))
    if n_.shape != d_.shape or np.any(~np.isfinite(n_)) or np.any(n_ <= 0) or np.any(~np.isfinite(d_)) \
            or np.any(d_ <= 0):
        raise InputError("forecast sizes must be finite, > 0 and of equal shape")
    return np.log(n_), np.log(d_)


def _starts(log_n, log_d, log_l) -> np.ndarray:
    """Grid of initialisations: exponents and coupling on a coarse grid, amplitudes matched to the data."""
    l_min, l_max = np.exp(log_l.min()), np.exp(log_l.max())
    out = []
    for e_frac in (0.5, 0.9):
        e = np.log(e_frac * l_min)
        half = np.log(max(l_max - e_frac * l_min, 1e-12) / 2)
        for alpha in (0.25, 0.5, 1.0, 2.0):
            for beta in (0.25, 0.5, 1.0, 2.0):
                for p in (0.3, 1.0, 3.0):
                    out.append([e, half + alpha * log_n.min(), half + beta * log_d.min(), alpha, beta, np.log(p)])
    return np.clip(np.asarray(out), _LOWER + 1e-3, _UPPER - 1e-3)


def _solve(starts: np.ndarray, log_n, log_d, log_l, delta: float):
    best = None
    for theta0 in starts:
        r = least_squares(lambda t: _log_prediction(t, log_n, log_d) - log_l, theta0,
                          jac=lambda t: _jacobian(t, log_n, log_d), bounds=(_LOWER, _UPPER),
                          loss="huber", f_scale=delta, method="trf", max_nfev=2000, x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    return best


def _check_identified(theta, log_n, log_d) -> None:
    span = _UPPER - _LOWER
    for v, lo, hi, s, name in zip(theta, _LOWER, _UPPER, span, _THETA_NAMES, strict=True):
        if min(v - lo, hi - v) < 1e-4 * s:
            raise NotIdentifiableError(
                f"coupled scaling-law fit not identified: {name} = {v:.4g} is at the search boundary "
                f"[{lo:.3g}, {hi:.3g}] (the data do not constrain it)")
    jac = _jacobian(theta, log_n, log_d)
    # d log L / d log E, d log A, d log B: each term's share of the prediction; a term below 1e-3
    # everywhere sits in a flat valley (the optimizer stops anywhere along it)
    for j, term in enumerate(("E", "A / N^alpha", "B / D^beta")):
        if np.abs(jac[:, j]).max() < 1e-3:
            raise NotIdentifiableError(
                f"coupled scaling-law fit not identified: the term {term} contributes at most "
                f"{np.abs(jac[:, j]).max():.2g} of the predicted loss at every point (the data do not constrain it)")
    _lse_fit.check_jacobian(jac, _COND_MAX, "coupled scaling-law")


def fit_coupled_scaling_law(
    N: Float[np.ndarray, "R"],
    D: Float[np.ndarray, "R"],
    L: Float[np.ndarray, "R"],
    *,
    huber_delta: float = 1e-3,
    bootstrap: int = 100,
    n_starts: int = 8,
    level: float = 0.95,
    seed: int = 0,
) -> CoupledScalingLawFit:
    """Fit ``L = E + ((A/N^alpha)^(1/p) + (B/D^beta)^(1/p))^p`` to R runs.

    Args:
        N: ``(R,)`` model sizes, ``> 0``.
        D: ``(R,)`` data sizes (examples or tokens seen), ``> 0``.
        L: ``(R,)`` losses, ``> 0``.
        huber_delta: Huber threshold on log-loss residuals (as in Hoffmann et al. 2022).
        bootstrap: row-resampling replicates (0 = no intervals); each refitted from the
            point estimate.
        n_starts: trust-region fits started from the best grid points (by objective).
        level: central coverage of the percentile intervals.
        seed: seed of the bootstrap resampling.

    Returns:
        ``CoupledScalingLawFit`` (use ``.loss`` and ``.interval`` to forecast).

    Algorithm:
        Residuals ``log L_hat - log L`` with ``log L_hat = LSE(log E, p LSE((log A
        - alpha log N) / p, (log B - beta log D) / p))``; robust least squares
        (scipy ``least_squares``, trust-region reflective, Huber loss with scale
        ``huber_delta``, analytic Jacobian) inside a wide box, from the best
        ``n_starts`` of a 96-point grid; percentile bootstrap over rows
        (Besiroglu et al. 2024). Cost ~ (n_starts + bootstrap) small fits.

    Source:
        Functional form: Kaplan et al. 2020, "Scaling laws for neural language
        models", Eq. (1.5) (a power of a sum of the two bottleneck terms),
        generalised with an irreducible E (Hoffmann et al. 2022, Eq. 2) and a
        free coupling p; fitting procedure: Hoffmann et al. 2022, App. D.2.

    Failure modes:
        Raises ``NotIdentifiableError`` instead of returning a misleading answer
        when: fewer than 12 rows; N or D takes fewer than 3 distinct values; a
        term (E, the N term or the D term) is below 1e-3 of the prediction at
        every row; the optimum sits on the search box (e.g. E -> 0, an exponent -> 0, or p at
        its limits 0.02 / 50); or the column-scaled Jacobian has condition number
        > 1e8 (parameters trade off). Six parameters need data that bend in both
        directions and cover the crossover between the bottlenecks; a grid on
        which one bottleneck always dominates identifies neither p nor the
        other term.
    """
    n_, d_, l_ = (np.asarray(v, dtype=np.float64) for v in (N, D, L))
    _lse_fit.check_data({"N": n_, "D": d_}, l_, n_params=6, min_distinct=3)
    if not (0 < level < 1):
        raise InputError(f"level must be in (0, 1), got {level}")
    log_n, log_d, log_l = np.log(n_), np.log(d_), np.log(l_)
    grid = _starts(log_n, log_d, log_l)
    costs = np.array([np.sum(_lse_fit._huber(_log_prediction(t, log_n, log_d) - log_l, huber_delta))
                      for t in grid])
    starts = grid[np.argsort(costs)[:n_starts]]
    best = _solve(starts, log_n, log_d, log_l, huber_delta)
    _check_identified(best.x, log_n, log_d)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        idx = rng.integers(0, l_.size, l_.size)
        r = _solve(np.stack([best.x, starts[0]]), log_n[idx], log_d[idx], log_l[idx], huber_delta)
        boot.append(r.x)
    boot_theta = np.asarray(boot).reshape(-1, 6)
    intervals = {}
    if boot_theta.shape[0]:
        named = np.column_stack([np.exp(boot_theta[:, :3]), boot_theta[:, 3:5], np.exp(boot_theta[:, 5])])
        lo, hi = np.percentile(named, [50 * (1 - level), 50 * (1 + level)], axis=0)
        intervals = {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(_NAMES)}
    t = best.x
    return CoupledScalingLawFit(E=float(np.exp(t[0])), A=float(np.exp(t[1])), B=float(np.exp(t[2])),
                                alpha=float(t[3]), beta=float(t[4]), p=float(np.exp(t[5])),
                                objective=float(best.cost), n_points=int(l_.size), level=level,
                                intervals=intervals, bootstrap=boot_theta)
