"""Critical batch size: the steps/examples trade-off of large-batch training (McCandlish et al. 2018).

One job: fit ``S(B) = S_min (1 + B_crit / B)`` to the number of optimizer
steps needed to reach a fixed target at several batch sizes, and predict
``B_crit`` from the gradient noise scale.  It ignores learning-rate tuning
per batch size (the model assumes each point is run at its best LR), the
drift of ``B_crit`` during training, and Adam-specific corrections.

Relations (with ``E = B S`` examples processed):
``S/S_min - 1 = (E/E_min - 1)^{-1}``, equivalently
``S = S_min (1 + B_crit/B)``, ``E = E_min (1 + B/B_crit)``, ``B_crit = E_min / S_min``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float
from scipy.optimize import least_squares

from lmech.errors import InputError, NotIdentifiableError

__all__ = [
    "CriticalBatchFit",
    "NotIdentifiableError",
    "fit_critical_batch",
    "predicted_critical_batch",
    "simple_noise_scale",
]




@dataclass(frozen=True)
class CriticalBatchFit:
    """Fitted ``S_min`` (steps), ``B_crit`` (examples), ``E_min = S_min B_crit`` (examples).

    ``intervals`` maps each name to a percentile bootstrap ``(lo, hi)`` at
    ``level`` (empty when ``bootstrap=0``).
    """

    s_min: float
    b_crit: float
    e_min: float
    level: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def steps(self, batch_size: Float[np.ndarray, "G"]) -> Float[np.ndarray, "G"]:
        """Predicted steps to target ``S_min (1 + B_crit / B)``."""
        return self.s_min * (1.0 + self.b_crit / np.asarray(batch_size, dtype=np.float64))


def _fit_log(b: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(S_min, B_crit) minimising sum (log S - log S_min(1 + B_crit/B))^2, started from OLS of S on 1/B."""
    design = np.stack([np.ones_like(b), 1.0 / b], axis=1)
    c0, c1 = np.linalg.lstsq(design, s, rcond=None)[0]
    if not (c0 > 0 and c1 > 0):
        raise NotIdentifiableError(
            "steps do not decrease like S_min(1 + B_crit/B) over these batch sizes "
            f"(linear fit S = {c0:.3g} + {c1:.3g}/B needs both terms > 0)")
    x0 = np.log([c0, c1 / c0])
    res = least_squares(lambda p: p[0] + np.log1p(np.exp(p[1]) / b) - np.log(s), x0,
                        method="lm", xtol=1e-14, ftol=1e-14)
    return float(np.exp(res.x[0])), float(np.exp(res.x[1]))


def fit_critical_batch(
    batch_sizes: Float[np.ndarray, "R"],
    steps_to_target: Float[np.ndarray, "R"],
    *,
    bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> CriticalBatchFit:
    """Fit ``S = S_min (1 + B_crit / B)`` to a batch-size sweep.

    Args:
        batch_sizes: ``(R,)`` batch sizes ``B > 0`` (examples per step).
        steps_to_target: ``(R,)`` steps ``S > 0`` to reach the same target loss.
        bootstrap: row-resampling replicates for intervals (0 = none).
        level: central coverage of the percentile intervals.
        seed: seed of the resampling.

    Returns:
        ``CriticalBatchFit``.

    Algorithm:
        Ordinary least squares of ``S`` on ``(1, 1/B)`` gives a start
        (``S_min = c0``, ``B_crit = c1/c0``); Levenberg-Marquardt then
        minimises squared log-residuals (step counts have roughly
        multiplicative noise). Percentile bootstrap over rows. O(R) per fit.

    Source:
        McCandlish, Kaplan, Amodei & OpenAI Dota Team 2018, "An empirical
        model of large-batch training" (arXiv:1812.06162), Section 2.3,
        Eq. (2.11) ``(S/S_min - 1)(E/E_min - 1) = 1`` and ``B_crit = E_min/S_min``.

    Failure modes:
        Raises ``NotIdentifiableError`` for fewer than 3 distinct batch sizes,
        for steps that do not decrease with ``B`` (non-positive linear
        coefficients), and when the fitted ``B_crit`` lies more than 10x
        outside the sampled batch range (the sweep never reaches the bend,
        so ``B_crit`` is an extrapolation).
    """
    b = np.asarray(batch_sizes, dtype=np.float64)
    s = np.asarray(steps_to_target, dtype=np.float64)
    if b.ndim != 1 or b.shape != s.shape:
        raise InputError(f"batch_sizes and steps_to_target must be 1-d of equal length, got {b.shape}, {s.shape}")
    for name, arr in (("batch_sizes", b), ("steps_to_target", s)):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            raise InputError(f"{name} must be finite and > 0 (row {int(bad[0])} is {arr[bad[0]]})")
    if np.unique(b).size < 3:
        raise NotIdentifiableError(
            f"need at least 3 distinct batch sizes to identify S_min and B_crit, got {np.unique(b).size}")
    if not (0 < level < 1):
        raise InputError(f"level must be in (0, 1), got {level}")
    s_min, b_crit = _fit_log(b, s)
    if not (b.min() / 10 <= b_crit <= 10 * b.max()):
        raise NotIdentifiableError(
            f"fitted B_crit = {b_crit:.3g} is more than 10x outside the sampled batch sizes "
            f"[{b.min():.3g}, {b.max():.3g}]: the sweep does not bracket the critical batch")
    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(bootstrap):
            idx = rng.integers(0, b.size, size=b.size)
            if np.unique(b[idx]).size < 3:
                continue
            try:
                sm, bc = _fit_log(b[idx], s[idx])
            except NotIdentifiableError:
                continue
            reps.append((sm, bc, sm * bc))
        if reps:
            lo, hi = np.percentile(np.array(reps), [50 * (1 - level), 50 * (1 + level)], axis=0)
            intervals = {k: (float(lo[i]), float(hi[i])) for i, k in enumerate(("s_min", "b_crit", "e_min"))}
    return CriticalBatchFit(s_min=s_min, b_crit=b_crit, e_min=s_min * b_crit, level=level, intervals=intervals)


def predicted_critical_batch(noise_scale: float) -> float:
    """Predicted critical batch ``B_crit ~ B_noise ~ B_simple`` (examples) from a gradient noise scale.

    Returns the noise scale itself: McCandlish et al. find ``B_crit`` close to
    ``B_noise = tr(H Sigma) / (G^T H G)`` and use
    ``B_simple = tr(Sigma) / |G|^2`` (equal to ``B_noise`` when ``H`` is a
    multiple of the identity) as its cheap estimate.

    Source:
        McCandlish et al. 2018, Section 2.2 (definitions of ``B_noise``,
        ``B_simple``) and Section 3 (``B_crit`` tracks ``B_simple`` within
        about an order of magnitude, closely in most tasks).

    Failure modes:
        ``B_simple`` ignores curvature: with an ill-conditioned Hessian it can
        differ from ``B_noise`` (and ``B_crit``) by a large factor; it also
        grows during training as the gradient shrinks.
    """
    if not (np.isfinite(noise_scale) and noise_scale > 0):
        raise InputError(f"noise_scale must be finite and > 0, got {noise_scale}")
    return float(noise_scale)


def simple_noise_scale(per_example_grads: Float[np.ndarray, "N P"]) -> float:
    """Unbiased-ratio estimate of ``B_simple = tr(Sigma) / |G|^2`` from per-example gradients.

    Args:
        per_example_grads: ``(N, P)`` gradients of the per-example loss, ``N >= 2``.

    Returns:
        ``B_simple`` in examples.

    Algorithm:
        ``tr(Sigma)`` by the unbiased sample covariance trace, ``|G|^2`` by
        ``|g_bar|^2 - tr(Sigma_hat)/N`` (removing the noise bias of the mean's
        squared norm); ratio of the two. O(N P).

    Source:
        McCandlish et al. 2018, Section 2.2 (``B_simple``) and Appendix A
        (bias correction of ``|G|^2`` with ``tr(Sigma)/B``).

    Failure modes:
        The ratio of unbiased estimates is biased for small ``N``; when the
        corrected ``|G|^2 <= 0`` (noise dominates the mean) raises
        ``NotIdentifiableError``: use more examples.
    """
    g = np.asarray(per_example_grads, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 2:
        raise InputError(f"per_example_grads must be (N >= 2, P), got shape {g.shape}")
    n = g.shape[0]
    mean = g.mean(axis=0)
    tr_sigma = float(((g - mean) ** 2).sum() / (n - 1))
    g2 = float(mean @ mean) - tr_sigma / n
    if g2 <= 0:
        raise NotIdentifiableError(
            f"gradient signal not resolved: |G|^2 estimate {g2:.3g} <= 0 with N = {n}; use more examples")
    return tr_sigma / g2
