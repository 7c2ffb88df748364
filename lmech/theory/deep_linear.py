"""Mode dynamics of a two-layer deep linear network under gradient flow (Saxe et al. 2014).

One job: given the singular values of the input-output correlation matrix and a
small balanced initial mode strength, predict how strongly each mode is learned
after a given number of gradient-descent steps, and how long a mode takes to
reach a fraction of its final strength.  It ignores unwhitened inputs,
unbalanced or misaligned initialisations (which only approach these
trajectories as the initial scale goes to zero), depth > 2, and the O(lr)
discretisation error of finite-step GD.

Conventions (shared by both functions):

* network ``f(x) = W2 W1 x`` with ``W1: (H, D)``, ``W2: (C, H)``;
* loss ``L = 1/(2N) sum_n ||y_n - W2 W1 x_n||^2`` (sum over the C outputs,
  mean over the N examples), so ``-dL/dW1 = W2^T (Sigma_yx - W Sigma_xx)`` and
  ``-dL/dW2 = (Sigma_yx - W Sigma_xx) W1^T`` with ``Sigma_yx = Y^T X / N``,
  ``Sigma_xx = X^T X / N``;
* whitened inputs ``Sigma_xx = I`` and ``Sigma_yx = U S V^T`` (SVD);
* gradient descent with step size ``lr`` for ``t`` steps is gradient flow for
  ``t * lr`` time units, i.e. Saxe et al.'s time constant is ``tau = 1`` when
  time is measured in ``lr``-scaled steps;
* "mode strength" ``u_r = U[:, r]^T W2 W1 V[:, r]``; a balanced aligned
  initialisation ``W1 = sqrt(u0) R V^T``, ``W2 = sqrt(u0) U R^T`` (``R`` with
  orthonormal columns) starts every mode at ``u0``.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Real

from lmech.errors import InputError

__all__ = ["mode_strength_trajectory", "time_to_learn"]


def mode_strength_trajectory(
    singular_values: Real[np.ndarray, "R"],
    u0: float,
    times: Real[np.ndarray, "S"],
    learning_rate: float,
) -> Float[np.ndarray, "S R"]:
    """Predicted strength of each input-output mode after ``times`` GD steps.

    Args:
        singular_values: ``(R,)`` real (int or float dtype), singular
            values ``s_r >= 0`` of ``Sigma_yx`` (units of y times units of
            x), one per mode ``r``.
        u0: initial mode strength, ``> 0`` (same for every mode; balanced,
            aligned initialisation, see the module docstring).
        times: ``(S,)`` real (int or float dtype), numbers of GD steps
            (``>= 0``; need not be integers).
        learning_rate: GD step size ``lr > 0``.

    Returns:
        ``(S, R)`` float64 array ``u_r(t)``, same units as ``singular_values``.

    Algorithm:
        Closed form ``u(t) = s e^{2 s T} / (e^{2 s T} - 1 + s/u0)`` with
        ``T = t * lr``, evaluated as ``1 / ((1 - e^{-2sT})/s + e^{-2sT}/u0)``
        (``expm1``), which never overflows and has the correct ``s -> 0``
        limit ``u0 / (1 + 2 u0 T)``. Cost O(S R).

    Source:
        Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear
        dynamics of learning in deep linear neural networks" (ICLR,
        arXiv:1312.6120), Section 1.1: the reduced mode ODE
        ``tau du/dt = 2 u (s - u)`` and its sigmoidal solution (Eqs. 5-7 of
        arXiv v3), here with ``tau = 1`` and ``t -> t * lr``.

    Failure modes:
        Exact only for gradient flow from a balanced, aligned start; discrete
        GD deviates by O(lr * s) relative per unit time (use ``lr * s << 1``).
        A random small init is only approximately balanced/aligned, so the
        predicted timing is then off by an O(log) shift. ``u0 <= 0`` never
        learns (``u = 0`` is a fixed point) and is rejected.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if s.ndim != 1 or t.ndim != 1:
        raise InputError("singular_values and times must be 1-d arrays")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise InputError("singular_values must be finite and >= 0")
    if not (u0 > 0 and np.isfinite(u0)):
        raise InputError(f"u0 must be finite and > 0, got {u0}")
    if not (learning_rate > 0):
        raise InputError(f"learning_rate must be > 0, got {learning_rate}")
    if np.any(t < 0):
        raise InputError("times must be >= 0")
    big_t = (t * learning_rate)[:, None]  # (S, 1) flow time
    x = -2.0 * s[None, :] * big_t  # (S, R)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.where(s[None, :] > 0, -np.expm1(x) / s[None, :], 2.0 * big_t)
    return 1.0 / (growth + np.exp(x) / u0)


def time_to_learn(s: float, u0: float, lr: float, fraction: float = 0.5) -> float:
    """Number of GD steps for a mode of strength ``s`` to reach ``fraction * s``.

    Args:
        s: singular value of the mode, ``> 0``.
        u0: initial mode strength, ``0 < u0 < fraction * s``.
        lr: GD step size ``> 0``.
        fraction: target fraction of ``s`` in ``(0, 1)``.

    Returns:
        Steps ``t`` (float, not rounded) with ``u(t) = fraction * s``.

    Algorithm:
        Inverse of the closed form: ``t * lr = 1/(2s) ln(u_f (s - u0) /
        (u0 (s - u_f)))`` with ``u_f = fraction * s``. O(1).

    Source:
        Saxe, McClelland & Ganguli 2014 (arXiv:1312.6120), Section 1.1, the
        learning-time formula ``t = tau/(2s) ln[u_f (s - u0) / (u0 (s - u_f))]``,
        with ``tau = 1`` in units of ``lr``-scaled steps.

    Failure modes:
        Raises ``InputError`` when the target is not ahead of the start
        (``u0 >= fraction * s``), ``fraction`` is outside ``(0, 1)``
        (``fraction = 1`` takes infinite time) or ``s <= 0`` (never learned).
        Same gradient-flow caveats as ``mode_strength_trajectory``.
    """
    if not (s > 0):
        raise InputError(f"s must be > 0 (a zero mode is never learned), got {s}")
    if not (0 < fraction < 1):
        raise InputError(f"fraction must be in (0, 1), got {fraction}")
    if not (lr > 0):
        raise InputError(f"lr must be > 0, got {lr}")
    u_f = fraction * s
    if not (0 < u0 < u_f):
        raise InputError(f"need 0 < u0 < fraction*s = {u_f}, got u0 = {u0}")
    flow_time = np.log(u_f * (s - u0) / (u0 * (s - u_f))) / (2.0 * s)
    return float(flow_time / lr)
