"""Lanczos with full reorthogonalization for a symmetric operator given as a matvec.

One job: Krylov tridiagonalization and Ritz pairs with residual and error bounds. It
ignores where the operator comes from (see `_hvp.py`) and how the Ritz pairs are
used (top-k in `sharpness.py`, quadrature nodes in `spectral_density.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor

__all__ = ["LanczosResult", "lanczos", "tridiagonal_eigh", "ritz_error_bounds", "top_eigenpairs", "rounding_floor"]


@dataclass(frozen=True)
class LanczosResult:
    """Output of `lanczos`.

    Attributes:
        alpha: (m,) float64 diagonal of the tridiagonal T.
        beta: (m,) float64; beta[j] couples q_j and q_{j+1}; beta[m-1] is the
            norm of the final residual (0 when the Krylov space is invariant).
        basis: (m, P) Lanczos vectors q_0..q_{m-1} in the operator's dtype.
        ritz_values: (m,) float64, ascending eigenvalues of T.
        ritz_coeffs: (m, m) float64, column i is the eigenvector s_i of T.
        residuals: (m,) float64, |beta[m-1] * s_i[-1]| = ||A y_i - theta_i y_i|| in
            exact arithmetic (the bound |lambda - theta_i| <= residual_i holds for
            some eigenvalue lambda of A).
        converged: whether the stopping rule was met (or the space became invariant).
    """

    alpha: np.ndarray
    beta: np.ndarray
    basis: Tensor
    ritz_values: np.ndarray
    ritz_coeffs: np.ndarray
    residuals: np.ndarray
    converged: bool

    @property
    def steps(self) -> int:
        """Number of matvecs done (= Krylov dimension m)."""
        return len(self.alpha)

    @property
    def error_bounds(self) -> np.ndarray:
        """(m,) float64 eigenvalue-error bounds min(r_i, r_i^2 / gap_i); see `ritz_error_bounds`."""
        return ritz_error_bounds(self.ritz_values, self.residuals)

    def ritz_vectors(self, index: np.ndarray) -> Tensor:
        """Ritz vectors y_i = Q^T s_i for the given indices, shape (len(index), P)."""
        s = torch.as_tensor(self.ritz_coeffs[:, index].T.copy(), dtype=self.basis.dtype)
        return s @ self.basis


@cache
def _blas_controller() -> ThreadpoolController:
    # Library discovery is the slow part of threadpool_limits; done once, after scipy's
    # BLAS is loaded (first call), so each later limit() is cheap (bench/NOTES.md, `_lanczos._blas_controller`).
    return ThreadpoolController()


def tridiagonal_eigh(alpha: np.ndarray, beta_inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the symmetric tridiagonal matrix (float64, ascending)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        if len(alpha) == 1:
            return alpha.copy(), np.ones((1, 1))
        return scipy.linalg.eigh_tridiagonal(alpha, beta_inner)


def rounding_floor(values: np.ndarray, dtype: torch.dtype, size: int) -> np.ndarray:
    """The accuracy the arithmetic allows for eigenvalues `values` of an operator on `size`
    coordinates computed in `dtype`: eps(dtype) * sqrt(size) * |value|, the probabilistic
    rounding error of a length-`size` inner product (Higham, Accuracy and Stability of
    Numerical Algorithms, 2nd ed., Sec. 3.1 and Thm. 3.4's sqrt(n) rule of thumb). Reported
    bounds are raised to it, so a float32 (or bfloat16-copied) run never claims float64 accuracy."""
    return np.finfo(np.dtype(str(dtype).removeprefix("torch."))).eps * np.sqrt(size) * np.abs(values)


def ritz_error_bounds(theta: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Eigenvalue-error bounds min(r_i, r_i^2 / gap_i) for Ritz values theta (ascending) with residuals r.

    Args:
        theta: (m,) float64 Ritz values, ascending.
        res: (m,) float64 residual norms ||A y_i - theta_i y_i|| (unit y_i).

    Returns:
        (m,) float64: an estimate of |lambda - theta_i| for the eigenvalue lambda
        that theta_i approximates, never larger than the (rigorous) residual bound.

    Algorithm:
        Kato-Temple: if lambda is the only eigenvalue of A in (a, b) and
        a < theta < b, then |lambda - theta| <= r^2 / min(theta - a, b - theta).
        The unknown neighbours are estimated from the neighbouring Ritz pairs:
        b = theta_{i+1} - r_{i+1} (the eigenvalue near theta_{i+1} is at least
        that large) and a = theta_{i-1} + r_{i-1}. For the extreme Ritz values
        the outer side is rigorous (theta_max <= lambda_max, theta_min >=
        lambda_min), so b = +inf (resp. a = -inf). With no neighbour on the
        inner side (m = 1), or a gap <= 0 (neighbouring intervals overlap:
        clusters, unconverged neighbours), the bound falls back to r.
        Cost O(m).

    Source:
        Kato (1949), Temple (1928); Parlett, The Symmetric Eigenvalue Problem,
        Sec. 11.7 (Thm 11.7.1, gap theorem); Saad, Numerical Methods for Large
        Eigenvalue Problems (2nd ed.), Thm 4.6 and Kato-Temple.

    Failure modes:
        The gap estimate assumes the neighbouring Ritz value is within its
        residual of the NEXT eigenvalue. When an eigenvalue between theta_i and
        theta_{i-1} has not yet been found by the Krylov space (a hidden
        eigenvalue: start vector nearly orthogonal to it, or theta_{i-1} still
        converging from below onto lambda_{i-1} while sitting nearer lambda_{i-2}),
        the true gap is smaller and the bound is too small by the factor
        estimated gap / true gap. The residual bound (`residuals`) stays rigorous.
    """
    theta = np.asarray(theta, dtype=np.float64)
    res = np.asarray(res, dtype=np.float64)
    m = len(theta)
    if m < 2:
        return res.copy()
    gap = np.full(m, np.inf)
    gap[1:] = np.minimum(gap[1:], theta[1:] - (theta[:-1] + res[:-1]))  # distance to the lower neighbour
    gap[:-1] = np.minimum(gap[:-1], (theta[1:] - res[1:]) - theta[:-1])  # distance to the upper neighbour
    with np.errstate(divide="ignore", invalid="ignore"):
        quadratic = np.where(gap > 0, res ** 2 / gap, np.inf)
    return np.minimum(res, quadratic)


def lanczos(matvec: Callable[[Tensor], Tensor], v0: Tensor, max_iter: int,
            stop: Callable[[np.ndarray, np.ndarray], bool] | None = None,
            min_iter: int = 1) -> LanczosResult:
    """Run up to `max_iter` Lanczos steps from v0 with full reorthogonalization.

    Args:
        matvec: symmetric operator, (P,) -> (P,).
        v0: (P,) start vector (normalized inside), any nonzero vector.
        max_iter: maximum Krylov dimension m (capped at P).
        stop: optional rule (ritz_values ascending, residuals) -> bool, checked
            after every step from `min_iter` on.
        min_iter: first step at which `stop` is consulted.

    Algorithm:
        Classical three-term recurrence (w = A q_j - alpha_j q_j - beta_{j-1}
        q_{j-1}), then every new vector is reorthogonalized against the whole
        basis by classical Gram-Schmidt, with a second pass only when the
        first removed more than a 1 - 1/sqrt(2) fraction of the norm (the
        Daniel-Gragg-Kaufman-Stewart criterion; "twice is enough", Giraud et
        al. 2005), so no ghost eigenvalues appear. After the recurrence the
        basis components are O(eps ||A||), so the second pass is rare (near
        invariance) and a step costs one pass, O(j P) flops at step j, small
        beside an HVP (timings: bench/NOTES.md, `_lanczos.lanczos`). Cost: m matvecs, O(m^2 P) flops
        and an (m, P) basis in memory. T is kept in float64 and diagonalized with
        LAPACK stemr (single BLAS thread, so it cannot fight torch's threads).

    Source:
        Lanczos (1950); Golub & Van Loan, Matrix Computations (4th ed.) 10.1-10.3;
        reorthogonalization criterion: Daniel, Gragg, Kaufman & Stewart (1976),
        Math. Comp. 30, eq. (5.3) with eta = 1/sqrt(2); residual bound: Parlett, The Symmetric Eigenvalue Problem, Thm 13.1.1.

    Failure modes:
        A start vector orthogonal to an eigenvector never finds it, and only
        one copy of a repeated eigenvalue is found. The residual bound is exact
        only in exact arithmetic; the real residual also carries ~eps * ||A||
        from the matvec's rounding, so relative tolerances below ~10 * eps of
        the operator's dtype are not reachable for the largest eigenvalues.
    """
    p = v0.numel()
    max_iter = max(1, min(max_iter, p))
    basis = torch.empty((max_iter, p), dtype=v0.dtype, device=v0.device)
    alpha = np.zeros(max_iter)
    beta = np.zeros(max_iter)
    q = v0 / torch.linalg.vector_norm(v0)
    theta = np.zeros(1)
    s = np.ones((1, 1))
    res = np.zeros(1)
    converged = False
    m = 0
    for j in range(max_iter):
        basis[j] = q
        w = matvec(q)
        alpha[j] = float(torch.dot(w, q))
        w = w - alpha[j] * q if j == 0 else w - alpha[j] * q - beta[j - 1] * basis[j - 1]
        q_basis = basis[: j + 1]
        before = float(torch.linalg.vector_norm(w))
        for _ in range(2):
            w = torch.addmv(w, q_basis.T, q_basis @ w, alpha=-1)
            b = float(torch.linalg.vector_norm(w))
            if b >= before / np.sqrt(2):  # DGKS: little was removed, w is orthogonal to working accuracy
                break
            before = b
        beta[j] = b
        m = j + 1
        theta, s = tridiagonal_eigh(alpha[:m], beta[: m - 1])
        res = np.abs(b * s[-1, :])
        scale = max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
        if b <= 10 * torch.finfo(v0.dtype).eps * scale * m or not np.isfinite(b):
            beta[j] = 0.0  # invariant subspace: the Ritz values are exact eigenvalues
            res = np.zeros(m)
            converged = bool(np.isfinite(b))
            break
        if stop is not None and m >= min_iter and stop(theta, res):
            converged = True
            break
        q = w / b
    return LanczosResult(alpha[:m].copy(), beta[:m].copy(), basis[:m], theta, s, res, converged)


def top_eigenpairs(matvec: Callable[[Tensor], Tensor], v0: Tensor, k: int, rel_tol: float,
                   max_iter: int) -> tuple[LanczosResult, np.ndarray]:
    """Lanczos until the k algebraically largest Ritz values meet the relative error bound.

    Stops when min(r_i, r_i^2 / gap_i) <= rel_tol * |theta_i| for each of the top
    k Ritz values (`ritz_error_bounds`; for theta_i = 0 the scale is max |theta|).
    Returns the run and the indices (into ritz_values, descending order of value)
    of the top k pairs.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not rel_tol > 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol}")

    def stop(theta: np.ndarray, res: np.ndarray) -> bool:
        top = np.arange(len(theta))[::-1][:k]
        scale = np.where(theta[top] != 0, np.abs(theta[top]), np.max(np.abs(theta)))
        bounds = ritz_error_bounds(theta, res)
        return len(theta) >= k and bool(np.all(bounds[top] <= rel_tol * scale))

    run = lanczos(matvec, v0, max(max_iter, k), stop, min_iter=k)
    top = np.arange(run.steps)[::-1][:k]
    return run, top
