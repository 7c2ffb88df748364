"""Private engine for fitting sums of power laws on log-loss with a Huber objective.

Model with k covariates ``X_j > 0``:
``log L_hat = LSE(a_1 - alpha_1 log X_1, ..., a_k - alpha_k log X_k, e)``, i.e.
``L_hat = E + sum_j A_j / X_j^alpha_j`` with ``A_j = e^{a_j}``, ``E = e^e``.
Parameter vector ``theta = (a_1..a_k, e, alpha_1..alpha_k)``.
Objective ``sum_n Huber_delta(log L_hat_n - log L_n)`` (Hoffmann et al. 2022,
Appendix D.2; Besiroglu et al. 2024, Section 2). Used by ``scaling_law.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

from lmech.errors import InputError, NotIdentifiableError




@dataclass(frozen=True)
class _Fit:
    theta: np.ndarray
    objective: float


def _terms(theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """(..., n, k+1) exponents of the LSE for parameter array theta (..., 2k+1)."""
    k = logx.shape[1]
    a, e, alpha = theta[..., :k], theta[..., k], theta[..., k + 1 :]
    z = a[..., None, :] - alpha[..., None, :] * logx  # (..., n, k)
    ez = np.broadcast_to(e[..., None, None], z.shape[:-1] + (1,))
    return np.concatenate([z, ez], axis=-1)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def objective(theta: np.ndarray, logx: np.ndarray, logy: np.ndarray, delta: float) -> np.ndarray:
    """Huber objective; theta may carry leading batch axes (grid evaluation)."""
    z = _terms(theta, logx)
    zmax = z.max(axis=-1)
    r = zmax + np.log(np.exp(z - zmax[..., None]).sum(axis=-1)) - logy
    return _huber(r, delta).sum(axis=-1)


def _objective_and_grad(theta, logx, logy, delta):
    """Objective and gradient for one theta; plain numpy (faster than scipy's logsumexp on these
    tiny arrays: bench/NOTES.md, `_lse_fit._objective_and_grad`)."""
    k = logx.shape[1]
    z = np.empty((logx.shape[0], k + 1))
    np.multiply(logx, -theta[k + 1 :], out=z[:, :k])
    z[:, :k] += theta[:k]
    z[:, k] = theta[k]
    zmax = z.max(axis=1)
    w = np.exp(z - zmax[:, None])
    tot = w.sum(axis=1)
    w /= tot[:, None]  # softmax weights
    r = zmax + np.log(tot) - logy
    psi = np.clip(r, -delta, delta)  # Huber derivative
    ar = np.abs(r)
    f = np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta)).sum()
    g = np.empty_like(theta)
    pw = (psi[:, None] * w).sum(axis=0)  # (k+1,); elementwise, no BLAS threads for tiny products
    g[: k + 1] = pw
    g[k + 1 :] = -((psi[:, None] * logx) * w[:, :k]).sum(axis=0)
    return float(f), g


def jacobian(theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """(n, 2k+1) derivative of log L_hat with respect to theta."""
    k = logx.shape[1]
    w = softmax(_terms(theta, logx), axis=-1)
    return np.concatenate([w[:, :k], w[:, k : k + 1], -w[:, :k] * logx], axis=1)


def bounds(k: int) -> list[tuple[float, float]]:
    """Plausible box: wide enough never to bind for a sensible fit; reaching or leaving it means failure."""
    return [(-50.0, 100.0)] * k + [(-30.0, 30.0)] + [(0.0, 5.0)] * k


def minimise(starts: np.ndarray, logx, logy, delta: float) -> _Fit:
    """BFGS from each start; keep the lowest objective."""
    best = None
    scale = 1.0 / (logy.shape[0] * delta)  # objective / (n delta) is O(mean |r| / delta) >= O(1)

    def scaled(theta):
        f, g = _objective_and_grad(theta, logx, logy, delta)
        return f * scale, g * scale

    for s in starts:
        # Unconstrained BFGS (Hoffmann et al. use unconstrained L-BFGS), cheaper per iteration
        # than scipy's L-BFGS-B on these few parameters (bench/NOTES.md, `_lse_fit.minimise`).
        # The box of `bounds` is checked afterwards by check_identified: leaving it means
        # "not identified".
        res = minimize(scaled, s, jac=True, method="BFGS", options={"maxiter": 1000, "gtol": 1e-9})
        if best is None or res.fun < best.objective * scale:
            best = _Fit(theta=np.asarray(res.x, dtype=np.float64), objective=float(res.fun / scale))
    return best


def best_starts(grid: np.ndarray, logx, logy, delta: float, n_starts: int | None) -> np.ndarray:
    """The n_starts grid points with lowest objective (all of them when n_starts is None)."""
    if n_starts is None or n_starts >= len(grid):
        return grid
    vals = np.concatenate([objective(chunk, logx, logy, delta) for chunk in np.array_split(grid, max(1, len(grid) // 500))])
    return grid[np.argsort(vals, kind="stable")[:n_starts]]


def check_identified(theta: np.ndarray, logx: np.ndarray, names: list[str], cond_max: float,
                     min_share: float = 1e-3) -> None:
    """Raise NotIdentifiableError at a boundary optimum, a negligible term or a rank-deficient Jacobian.

    A term (``A_j / X_j^alpha_j`` or ``E``) whose share of the predicted loss is below
    ``min_share`` at every data point has a vanishing gradient: the optimizer stops anywhere
    along a flat valley (e.g. ``E -> 0`` for a curve that has not bent yet).
    """
    for (lo, hi), v, name in zip(bounds(logx.shape[1]), theta, names, strict=True):
        if min(v - lo, hi - v) < 1e-6 * (hi - lo):
            raise NotIdentifiableError(
                f"scaling-law fit not identified: {name} = {v:.4g} is at the search boundary "
                f"[{lo}, {hi}] (the data do not constrain it)")
    k = logx.shape[1]
    share = softmax(_terms(theta, logx), axis=-1).max(axis=0)  # (k+1,) largest share of each term
    for j in range(k + 1):
        if share[j] < min_share:
            term = names[j] if j < k else names[k]
            raise NotIdentifiableError(
                f"scaling-law fit not identified: the term with {term} contributes at most "
                f"{share[j]:.2g} of the predicted loss at every point (the data do not constrain it)")
    check_jacobian(jacobian(theta, logx), cond_max, "scaling-law")


def check_jacobian(jac: np.ndarray, cond_max: float, law: str) -> None:
    """Raise NotIdentifiableError when a column of the (rows, params) Jacobian of the fitted
    log-loss vanishes or the column-scaled Jacobian has condition number > cond_max."""
    col = np.linalg.norm(jac, axis=0)
    if np.any(col <= 1e-12 * max(col.max(), 1e-300)):
        raise NotIdentifiableError(f"{law} fit not identified: a parameter has no effect on the fit")
    sv = np.linalg.svd(jac / col, compute_uv=False)
    if sv[-1] <= sv[0] / cond_max:
        raise NotIdentifiableError(
            f"{law} fit not identified: degenerate curvature (Jacobian condition number "
            f"{sv[0] / max(sv[-1], 1e-300):.3g} > {cond_max:.0g}); parameters trade off against each other")


def check_data(columns: dict[str, np.ndarray], loss: np.ndarray, n_params: int, min_distinct: int) -> None:
    """Validate shapes/positivity and the minimum amount of data for n_params parameters."""
    n = loss.shape[0]
    for name, arr in [*columns.items(), ("loss", loss)]:
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(f"{name} must be 1-d with {n} entries, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            raise InputError(f"{name} must be finite and > 0 (row {int(bad[0])} is {arr[bad[0]]})")
    if n < 2 * n_params:
        raise NotIdentifiableError(
            f"too few points to fit {n_params} parameters: got {n}, need at least {2 * n_params}")
    for name, arr in columns.items():
        distinct = np.unique(arr).size
        if distinct < min_distinct:
            raise NotIdentifiableError(
                f"{name} takes only {distinct} distinct value(s); need at least {min_distinct} "
                f"to identify its exponent and the constant E")
