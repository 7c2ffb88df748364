"""Forecast the critical batch size of any model from its gradient noise scale (McCandlish et al. 2018).

One job: measure B_simple on a user's model + loss + data with the two-batch
estimator, attach an uncertainty, and report B_crit ~ B_simple. It ignores the
Hessian-weighted B_noise and the growth of the noise scale during training
(measure again later in training for a later forecast).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lmech.instruments._call import Batch, num_examples
from lmech.instruments._json import JsonResult
from lmech.instruments.gradient_noise_scale import gradient_noise_scale
from lmech.instruments._state import measures_model

__all__ = ["CriticalBatchForecast", "critical_batch_forecast"]


@dataclass(frozen=True)
class CriticalBatchForecast(JsonResult):
    """B_simple (examples) with a standard error and the forecast B_crit with a ~95% interval.

    Attributes:
        b_simple: tr(Sigma)/|G|^2 (examples). b_simple_se: its delta-method standard error.
        b_crit: forecast critical batch (= b_simple). b_crit_lo, b_crit_hi: b_simple * exp(-+2 se_log),
            the estimator's interval only (the B_crit ~ B_simple relation itself holds within
            a factor of a few, McCandlish et al. Fig. 4).
        grad_norm_sq, trace_sigma: the ingredients; num_pairs, small_batch, big_batch: settings.
        resolved: False when |G|^2 is not resolved (estimate <= 2 standard errors): b_crit is then meaningless.
    """

    b_simple: float
    b_simple_se: float
    b_crit: float
    b_crit_lo: float
    b_crit_hi: float
    grad_norm_sq: float
    trace_sigma: float
    num_pairs: int
    small_batch: int
    big_batch: int
    resolved: bool


@measures_model
def critical_batch_forecast(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                            data: Batch, *, small_batch: int | None = None,
                            big_batch: int | None = None, num_pairs: int = 32,
                            seed: int = 0) -> CriticalBatchForecast:
    """Gradient noise scale of `model` on `data` and the critical batch it forecasts.

    Args:
        model: any module (not modified).
        loss_fn: (outputs, targets) -> mean loss of the batch.
        data: (inputs (N, ...), targets (N, ...)).
        small_batch, big_batch: default min(64, N // 8) (at least 2) and min(1024, N) (examples).
        num_pairs: (small, big) batch pairs; the standard error shrinks as 1/sqrt(num_pairs).
        seed: seeds the batch draws.

    Algorithm:
        `gradient_noise_scale` (ratio of pair-averaged unbiased estimates of
        tr(Sigma) and |G|^2); standard error of the ratio by the delta method
        from the two standard errors, ignoring their covariance (a guide to
        the estimator's precision, not a rigorous interval). Cost: num_pairs * (small + big) per-example
        gradients.

    Source:
        McCandlish, Kaplan, Amodei et al. 2018, eq. 2.8 (B_simple), Section 2.2
        and Fig. 4 (B_crit ~ B_noise ~ B_simple).

    Failure modes:
        Late in training or with tiny batches |G|^2 is unresolved (`resolved`
        False); B_simple grows during training, so a forecast from the
        initial model underestimates the critical batch of later training.
    """
    n = num_examples(data[0])
    small = small_batch if small_batch is not None else max(2, min(64, n // 8))
    big = big_batch if big_batch is not None else min(1024, n)
    if not small < big:
        raise ValueError(f"need small_batch < big_batch, got {small} and {big} (data has {n} examples)")
    r = gradient_noise_scale(model, loss_fn, data, small_batch=small, big_batch=big,
                             num_pairs=num_pairs, seed=seed)
    rel_g = r.grad_norm_sq_se / abs(r.grad_norm_sq) if r.grad_norm_sq != 0 else math.inf
    rel_t = r.trace_sigma_se / abs(r.trace_sigma) if r.trace_sigma != 0 else math.inf
    se_log = math.sqrt(rel_g**2 + rel_t**2)
    resolved = bool(r.grad_norm_sq > 2 * r.grad_norm_sq_se and r.trace_sigma > 0)
    b = r.b_simple
    return CriticalBatchForecast(b_simple=b, b_simple_se=abs(b) * se_log, b_crit=b,
                                 b_crit_lo=b * math.exp(-2 * se_log), b_crit_hi=b * math.exp(2 * se_log),
                                 grad_norm_sq=r.grad_norm_sq, trace_sigma=r.trace_sigma, num_pairs=num_pairs,
                                 small_batch=small, big_batch=big, resolved=resolved)
