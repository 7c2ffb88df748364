"""Outputs of a linearized model trained by full-batch GD on MSE, from its kernel (NTK prediction).

One job: given the (fixed) tangent kernel on train and test inputs and the
initial outputs, predict the train and test outputs after ``t`` GD steps and
at convergence.  It ignores how the kernel is obtained (empirical NTK or an
analytic one), kernel drift during training (finite width), label noise
models, and stochastic (minibatch) training.

Convention: loss ``L = 1/(2N) sum_n sum_c (f_c(x_n) - y_nc)^2`` (sum over the
C outputs, mean over the N examples), GD ``theta <- theta - lr dL/dtheta``,
one kernel shared by all outputs: ``K(x, x') = grad f_c(x) . grad f_c(x')``
for every ``c`` (cross-output blocks zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from lmech.errors import InputError

__all__ = ["KernelPrediction", "kernel_regression_predictions"]


@dataclass(frozen=True)
class KernelPrediction:
    """Predicted outputs of the linearized model.

    Attributes:
        steps: ``(S,)`` float, the step counts (``inf`` = converged limit).
        train: ``(S, N, C)`` float64 outputs on the training inputs.
        test: ``(S, M, C)`` float64 outputs on the test inputs.
    """

    steps: Float[np.ndarray, "S"]
    train: Float[np.ndarray, "S N C"]
    test: Float[np.ndarray, "S M C"]


def _as2d(name: str, a, rows: int | None = None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or (rows is not None and arr.shape[0] != rows):
        want = f"({rows}, ...)" if rows is not None else "2-d"
        raise InputError(f"{name} must be {want}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains non-finite values")
    return arr


def kernel_regression_predictions(
    k_train: Float[np.ndarray, "N _"],  # square: checked in the body (InputError)
    k_test_train: Float[np.ndarray, "M N"],
    f0_train: Float[np.ndarray, "N C"],
    f0_test: Float[np.ndarray, "M C"],
    y: Float[np.ndarray, "N C"],
    lr: float,
    steps,
    *,
    rtol: float | None = None,
) -> KernelPrediction:
    """Train/test outputs of the linearized model after each of ``steps`` GD steps.

    Args:
        k_train: ``(N, N)`` symmetric PSD kernel on training inputs
            (output units^2 per parameter-units^2); a non-square array
            raises ``InputError``.
        k_test_train: ``(M, N)`` kernel between test and training inputs.
        f0_train: ``(N, C)`` outputs at initialisation on training inputs.
        f0_test: ``(M, C)`` outputs at initialisation on test inputs.
        y: ``(N, C)`` targets.
        lr: GD step size ``> 0``.
        steps: int or sequence of ints ``>= 0``; ``numpy.inf`` gives the
            converged (``t -> inf``) limit.
        rtol: eigenvalues ``<= rtol * lambda_max`` of ``k_train`` count as
            zero (default ``N * eps``); only the ``t = inf`` limit depends on it.

    Returns:
        ``KernelPrediction`` with ``train (S, N, C)`` and ``test (S, M, C)``.

    Algorithm:
        Residual dynamics ``r_{t+1} = (I - lr K / N) r_t``. With
        ``K = V diag(lam) V^T``:
        ``f_t(X) = f0(X) + V diag(1 - (1 - lr lam/N)^t) V^T (y - f0(X))`` and
        ``f_t(x) = f0(x) + K_xX V diag(g_t(lam)) V^T (y - f0(X))`` where
        ``g_t(lam) = (1 - (1 - lr lam / N)^t) / lam`` (computed with
        ``expm1``/``log1p``; ``g_t(0) = lr t / N``, the exact discrete limit),
        so a singular kernel needs no inverse. At ``t = inf``,
        ``g = 1/lam`` on the nonzero spectrum and 0 on the null space
        (pseudo-inverse: the min-norm interpolant). Cost: one ``eigh``
        O(N^3) plus O(S (N + M) N C).

    Source:
        Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington
        2019, "Wide neural networks of any depth evolve as linear models
        under gradient descent" (NeurIPS), Eqs. (9)-(11) (continuous time;
        here the exact discrete-time form, their Section 2.3 / Appendix);
        Jacot, Gabriel & Hongler 2018, "Neural tangent kernel" (NeurIPS),
        Section 5 (least-squares dynamics in function space).

    Failure modes:
        Exact only for a model that is linear in its parameters (infinite
        width, or lazy training); a finite network's kernel drifts. If
        ``lr * lambda_max / N > 2`` GD diverges and the prediction blows up
        accordingly (raises ``InputError`` for ``t = inf`` in that case).
        For a kernel inconsistent with any feature map (not PSD jointly on
        train and test) the null-space term of finite ``t`` grows like
        ``lr t / N``.
    """
    kxx = _as2d("k_train", k_train)
    n = kxx.shape[0]
    if kxx.shape != (n, n):
        raise InputError(f"k_train must be square, got shape {kxx.shape}")
    kzx = _as2d("k_test_train", k_test_train)
    if kzx.shape[1] != n:
        raise InputError(f"k_test_train must be (M, {n}), got shape {kzx.shape}")
    y_ = _as2d("y", y, n)
    f0x = _as2d("f0_train", f0_train, n)
    f0z = _as2d("f0_test", f0_test, kzx.shape[0])
    if f0x.shape != y_.shape or f0z.shape[1] != y_.shape[1]:
        raise InputError("f0_train, f0_test and y must share the output dimension C")
    if not (np.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be finite and > 0, got {lr}")
    ts = np.atleast_1d(np.asarray(steps, dtype=np.float64))
    if ts.ndim != 1 or np.any(ts < 0) or np.any(np.isnan(ts)):
        raise InputError("steps must be a step count or a 1-d sequence of counts >= 0 (inf allowed)")

    lam, v = np.linalg.eigh(0.5 * (kxx + kxx.T))
    lam = np.clip(lam, 0.0, None)  # PSD kernel; negative values are roundoff
    lam_max = float(lam[-1]) if n else 0.0
    tol = (n * np.finfo(np.float64).eps if rtol is None else rtol) * lam_max
    a = lr * lam / n  # per-step contraction of each eigen-residual
    if np.any(np.isinf(ts)) and lam_max > 0 and np.max(a) >= 2:
        raise InputError(f"lr * lambda_max / N = {np.max(a):.3g} >= 2: GD diverges, no t -> inf limit")

    resid = v.T @ (y_ - f0x)  # (N, C) residual in the eigenbasis
    kzv = kzx @ v  # (M, N)
    train_out, test_out = [], []
    for t in ts:
        if np.isinf(t):
            keep = lam > tol
            decay_done = keep.astype(np.float64)  # 1 - (1 - a)^inf on the nonzero spectrum
            g = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
        else:
            if np.all(a < 1):
                done = -np.expm1(t * np.log1p(-a))  # 1 - (1 - a)^t, accurate for tiny a
            else:
                done = 1.0 - np.power(1.0 - a, t)
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where(lam > 0, done / np.where(lam > 0, lam, 1.0), lr * t / n)
            decay_done = done
        train_out.append(f0x + v @ (decay_done[:, None] * resid))
        test_out.append(f0z + kzv @ (g[:, None] * resid))
    return KernelPrediction(steps=ts, train=np.stack(train_out), test=np.stack(test_out))
