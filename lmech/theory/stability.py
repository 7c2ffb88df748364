"""Linear-stability thresholds on sharpness for GD, momentum and Adam ("edge of stability").

One job: the largest (preconditioned) Hessian eigenvalue at which the
optimizer is still stable on the local quadratic model of the loss.  It
ignores everything beyond the quadratic model: the self-stabilisation that
keeps real training near (not beyond) the threshold, stochastic gradients,
and Adam's time-varying preconditioner (treated as frozen).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from lmech.errors import InputError

__all__ = [
    "adam_sharpness_threshold",
    "gd_sharpness_threshold",
    "momentum_sharpness_threshold",
    "preconditioned_sharpness",
]


def _check_lr(lr: float) -> None:
    if not (np.isfinite(lr) and lr > 0):
        raise InputError(f"learning rate must be finite and > 0, got {lr}")


def _check_beta(beta: float) -> None:
    if not (0 <= beta < 1):
        raise InputError(f"momentum beta must be in [0, 1), got {beta}")


def gd_sharpness_threshold(lr: float) -> float:
    """Largest Hessian eigenvalue for which full-batch GD with step ``lr`` is stable: ``2 / lr``.

    Units: 1 / (units of lr), i.e. the Hessian's units when lr is in
    parameter^2 per loss.

    Algorithm:
        On ``f = a x^2 / 2`` GD gives ``x <- (1 - lr a) x``, stable iff
        ``|1 - lr a| < 1`` iff ``a < 2 / lr``. O(1).

    Source:
        Cohen, Kaur, Li, Kolter & Talwalkar 2021, "Gradient descent on neural
        networks typically occurs at the edge of stability" (ICLR),
        Section 2 (the quadratic-model argument for the 2/eta threshold).

    Failure modes:
        ``a == 2/lr`` exactly oscillates with constant amplitude. For
        non-quadratic losses, sharpness above the threshold does not imply
        divergence (edge of stability: the loss keeps decreasing
        non-monotonically).
    """
    _check_lr(lr)
    return 2.0 / lr


def momentum_sharpness_threshold(lr: float, beta: float, *, ema: bool = False) -> float:
    """Stability threshold on sharpness for heavy-ball momentum.

    Args:
        lr: step size ``> 0``.
        beta: momentum coefficient in ``[0, 1)``.
        ema: ``False`` for PyTorch SGD momentum ``m <- beta m + g``
            (threshold ``(2 + 2 beta) / lr``); ``True`` for the exponential
            moving average ``m <- beta m + (1 - beta) g`` used by Adam
            (threshold ``(2 + 2 beta) / ((1 - beta) lr)``).

    Algorithm:
        On ``f = a x^2/2`` the iteration is linear with characteristic
        polynomial ``z^2 - (1 + beta - c a) z + beta`` (``c = lr`` or
        ``lr (1 - beta)``); its roots leave the unit disk through ``z = -1``
        when ``c a = 2 + 2 beta``. O(1).

    Source:
        Cohen et al. 2021 (ICLR), Appendix on momentum (threshold
        ``(2 + 2 beta) / eta``); Cohen et al. 2022 "Adaptive gradient methods
        at the edge of stability" (arXiv:2207.14484), Section 2, for the EMA
        form.

    Failure modes:
        Same quadratic-model caveats as ``gd_sharpness_threshold``.
    """
    _check_lr(lr)
    _check_beta(beta)
    step = lr * (1.0 - beta) if ema else lr
    return (2.0 + 2.0 * beta) / step


def adam_sharpness_threshold(lr: float, beta1: float = 0.9) -> float:
    """Threshold on Adam's *preconditioned* sharpness: ``(2 + 2 beta1) / ((1 - beta1) lr)``.

    For ``beta1 = 0.9`` this is ``38 / lr``. Compare it with
    ``preconditioned_sharpness(H, sqrt(v_hat) + eps)``, not with the raw
    sharpness.

    Algorithm:
        Adam with a frozen preconditioner ``P`` is EMA momentum on the
        quadratic with Hessian ``P^{-1/2} H P^{-1/2}``; see
        ``momentum_sharpness_threshold(ema=True)``. O(1).

    Source:
        Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze,
        Nado, Dahl & Gilmer 2022, "Adaptive gradient methods at the edge of
        stability" (arXiv:2207.14484), Section 2 ("preconditioned
        sharpness", threshold ``(2 + 2 beta1) / ((1 - beta1) eta)``).

    Failure modes:
        Real Adam adapts ``v`` and so does not diverge above the threshold
        the way frozen-preconditioner dynamics do; the threshold describes
        where the preconditioned sharpness equilibrates.
    """
    return momentum_sharpness_threshold(lr, beta1, ema=True)


def preconditioned_sharpness(
    hessian: Float[np.ndarray, "P P"], preconditioner: Float[np.ndarray, "P"]
) -> float:
    """Largest eigenvalue of ``P^{-1} H`` for a diagonal preconditioner ``P > 0``.

    Args:
        hessian: ``(P, P)`` symmetric Hessian (loss per parameter^2).
        preconditioner: ``(P,)`` diagonal of ``P`` (for Adam,
            ``sqrt(v_hat) + eps``), all ``> 0``.

    Returns:
        ``lambda_max(P^{-1/2} H P^{-1/2})`` (same spectrum as ``P^{-1} H``).

    Algorithm:
        Symmetric rescaling and a dense ``eigvalsh``: O(P^3); for small
        problems only (use Lanczos with HVPs for networks).

    Source:
        Cohen et al. 2022 (arXiv:2207.14484), Section 2, definition of
        preconditioned sharpness.

    Failure modes:
        Raises ``InputError`` for non-square ``hessian``, shape mismatch or a
        non-positive preconditioner entry.
    """
    h = np.asarray(hessian, dtype=np.float64)
    p = np.asarray(preconditioner, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or p.shape != (h.shape[0],):
        raise InputError(f"need hessian (P, P) and preconditioner (P,), got {h.shape}, {p.shape}")
    if np.any(p <= 0):
        raise InputError("preconditioner entries must be > 0")
    d = 1.0 / np.sqrt(p)
    sym = d[:, None] * (0.5 * (h + h.T)) * d[None, :]
    return float(np.linalg.eigvalsh(sym)[-1])
