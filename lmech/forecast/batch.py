"""Batch-size forecast: the critical batch from the gradient noise scale, and the best lr at each batch.

One job: measure B_simple = tr(Σ)/|G|² and the Hessian-weighted B_noise = tr(HΣ)/GᵀHG on the
user's model at its current parameters, fit ε_max of ε_opt(B) = ε_max / (1 + B_noise/B) to the
best learning rates of short sweeps at small batches, and forecast ε_opt at larger batches
(McCandlish, Kaplan, Amodei et al. 2018, "An empirical model of large-batch training",
eqs. 2.6-2.8). It ignores the drift of the noise scale along training (measured once, at the
start) and Adam (the law is derived for SGD).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.forecast.result import Forecast, track_record
from lmech.instruments._call import num_examples, take
from lmech.instruments._hvp import loss_at, make_hvp, unflatten_params
from lmech.seeding import generator

__all__ = ["NoiseScales", "hessian_noise_scale", "optimal_lr", "EpsMaxFit", "fit_eps_max", "lr_grid",
           "best_lr_from_losses",
           "forecast_batch", "PHENOMENON_NAME"]

PHENOMENON_NAME = "forecast-batch"


@dataclass(frozen=True)
class NoiseScales:
    """Gradient statistics of one data set at one parameter point (units: loss² per parameter² etc.).

    Attributes:
        b_simple: tr(Σ) / |G|² (examples), McCandlish eq. 2.8.
        b_noise: tr(HΣ) / GᵀHG (examples), McCandlish eq. 2.7 (the batch at which the best step
            halves the noiseless one).
        eps_max: |G|² / GᵀHG (learning rate), the best step of the noiseless quadratic model, eq. 2.6.
        grad_norm_sq: |G|²; g_h_g: GᵀHG; trace_sigma: tr(Σ); trace_h_sigma: tr(HΣ).
        examples: M, the per-example gradients used; population: N, the data-set size;
        b_noise_se, b_simple_se: delta-method standard errors from the M per-example terms
            (0 when M = N: the estimate is then exact for this data set).
    """

    b_simple: float
    b_noise: float
    eps_max: float
    grad_norm_sq: float
    g_h_g: float
    trace_sigma: float
    trace_h_sigma: float
    examples: int
    population: int
    b_noise_se: float
    b_simple_se: float


def _per_example_gradients(model, loss_fn, data, index: Tensor, theta: Tensor, layout) -> Tensor:
    rows = []
    for i in index.tolist():
        leaves = theta.clone().requires_grad_(True)
        one = torch.tensor([i])
        with torch.enable_grad():
            loss = loss_at(model, loss_fn, (take(data[0], one), take(data[1], one)), unflatten_params(leaves, layout))
            (grad,) = torch.autograd.grad(loss, leaves)
        rows.append(grad.detach())
    return torch.stack(rows)


def hessian_noise_scale(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data, *,
                        examples: int | None = 128, chunk: int = 32, seed: int = 0) -> NoiseScales:
    """B_noise = tr(HΣ)/GᵀHG and B_simple = tr(Σ)/|G|² from per-example gradients.

    Args:
        model: any module (not modified: functional calls on copies of its parameters).
        loss_fn: (outputs, targets) -> mean loss; a one-example batch gives that example's loss.
        data: (inputs (N, ...), targets (N, ...)): G and H are the full-data gradient and Hessian,
            Σ = (1/N) Σ_i (g_i - G)(g_i - G)ᵀ the per-example gradient covariance.
        examples: M per-example gradients drawn without replacement (None or >= N: all, exact).
        chunk: HVPs per batched backward pass.
        seed: seeds the draw of the M examples.

    Algorithm:
        One full-data HVP graph (`make_hvp`); G from it; GᵀHG one HVP; d_i = g_i - G for the M
        drawn examples (M single-example gradients), tr(Σ) ≈ mean |d_i|², tr(HΣ) ≈ mean d_iᵀ H d_i
        (M HVPs, in chunks): unbiased for the data set's own Σ (a simple random sample's mean).
        Cost: about 3M + 3 gradients. Standard errors: delta method on the ratio of means.

    Source:
        McCandlish et al. 2018, eqs. 2.6 (ε_max = |G|²/GᵀHG), 2.7 (B_noise), 2.8 (B_simple).

    Failure modes:
        GᵀHG <= 0 (negative curvature along G, e.g. at a saddle) makes B_noise and ε_max
        meaningless: raises InputError. Models with dropout or batch statistics in train mode
        give per-example gradients that differ from batch ones; measure in eval mode.
    """
    n = num_examples(data[0])
    op = make_hvp(model, loss_fn, data)
    theta, layout, grad = op.theta, op.layout, op.grad
    g2 = float(grad.double().pow(2).sum())
    ghg = float((grad.double() * op.matvec(grad).double()).sum())
    if not (ghg > 0 and g2 > 0):
        raise InputError(f"GᵀHG = {ghg:.3g} and |G|² = {g2:.3g}: the noise scale needs positive curvature "
                         "along the gradient")
    m = n if examples is None or examples >= n else int(examples)
    if m < 2:
        raise InputError(f"need at least 2 examples for the noise scale, got {m}")
    index = torch.randperm(n, generator=generator(seed, "hessian-noise-scale-examples"))[:m]
    deviations = _per_example_gradients(model, loss_fn, data, index, theta, layout) - grad
    norms = deviations.double().pow(2).sum(1)
    curv = torch.cat([(d.double() * op.matvec(d).double()).sum(1)
                      for d in deviations.split(chunk)])
    tr_sigma, tr_h_sigma = float(norms.mean()), float(curv.mean())
    exact = m == n

    def se(values: Tensor, scale: float) -> float:
        return 0.0 if exact else float(values.std() / math.sqrt(m)) / scale

    return NoiseScales(b_simple=tr_sigma / g2, b_noise=tr_h_sigma / ghg, eps_max=g2 / ghg, grad_norm_sq=g2,
                       g_h_g=ghg, trace_sigma=tr_sigma, trace_h_sigma=tr_h_sigma, examples=m, population=n,
                       b_noise_se=se(curv, ghg), b_simple_se=se(norms, g2))


def optimal_lr(batch, eps_max: float, b_noise: float) -> np.ndarray:
    """ε_opt(B) = ε_max / (1 + B_noise / B) (McCandlish et al. 2018, eq. 2.6), elementwise over B > 0."""
    b = np.asarray(batch, dtype=np.float64)
    if np.any(~(b > 0)):
        raise InputError(f"batch sizes must be > 0, got {b.tolist()}")
    if not (eps_max > 0 and b_noise >= 0):
        raise InputError(f"need eps_max > 0 and b_noise >= 0, got {eps_max}, {b_noise}")
    return np.asarray(eps_max / (1.0 + b_noise / b))


@dataclass(frozen=True)
class EpsMaxFit:
    """ε_max fitted in log space with B_noise held fixed: eps_max, its 95% interval (lo, hi), the
    residual factor spread (geometric standard deviation of the points about the law) and the points."""

    eps_max: float
    lo: float
    hi: float
    spread: float
    batches: tuple[float, ...]
    best_lrs: tuple[float, ...]


def fit_eps_max(batches, best_lrs, b_noise: float, *,
                grid_factor: float = 2 ** 0.25) -> EpsMaxFit:
    """Fit log ε_max = mean_i [log lr_i + log(1 + B_noise / B_i)] to the best rates of small batches.

    Args:
        batches: (R,) batch sizes > 0; best_lrs: (R,) the best learning rate measured at each.
        b_noise: the measured noise scale (held fixed: at B << B_noise the law is linear in B and
            cannot separate ε_max from B_noise).
        grid_factor: the lr grid's ratio; a grid point is within a factor sqrt(grid_factor) of the
            true optimum, so the interval is at least that wide.

    Algorithm: least squares on logs (the mean); the 95% interval is mean ± t_{0.975, R-1} s/√R
    (s the residual standard deviation), widened to at least the grid's half step. O(R).
    """
    b = np.asarray(batches, dtype=np.float64)
    lr = np.asarray(best_lrs, dtype=np.float64)
    if b.shape != lr.shape or b.ndim != 1 or len(b) < 2:
        raise InputError(f"fit_eps_max needs at least 2 (batch, best lr) pairs, got {len(np.atleast_1d(b))}")
    if np.any(~(b > 0)) or np.any(~(lr > 0)) or not np.all(np.isfinite(lr)):
        raise InputError("batches and best learning rates must be finite and > 0")
    logs = np.log(lr) + np.log1p(b_noise / b)
    centre = float(logs.mean())
    from scipy.stats import t

    s = float(logs.std(ddof=1))
    half = max(float(t.ppf(0.975, len(b) - 1)) * s / math.sqrt(len(b)), 0.5 * math.log(grid_factor))
    return EpsMaxFit(math.exp(centre), math.exp(centre - half), math.exp(centre + half), math.exp(s),
                     tuple(b.tolist()), tuple(lr.tolist()))


def lr_grid(centre: float, half_width: int, factor: float = 2 ** 0.25) -> list[float]:
    """2 half_width + 1 learning rates centre * factor^j, j = -half_width..half_width."""
    if not (centre > 0 and math.isfinite(centre)):
        raise InputError(f"lr grid centre must be finite and > 0, got {centre}")
    return [centre * factor ** j for j in range(-half_width, half_width + 1)]


def best_lr_from_losses(lrs, losses) -> tuple[float, bool]:
    """(best lr, at the grid edge): the vertex of the parabola in log lr through the grid minimum and its
    two neighbours (the minimum itself when it is at an edge or the parabola is not convex)."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    order = np.argsort(lrs)
    lrs, losses = lrs[order], losses[order]
    i = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.inf)))
    if i == 0 or i == len(lrs) - 1:
        return float(lrs[i]), True
    x = np.log(lrs[i - 1:i + 2])
    a, b, _ = np.polyfit(x, losses[i - 1:i + 2], 2)
    if not a > 0:
        return float(lrs[i]), False
    vertex = float(np.clip(-b / (2 * a), x[0], x[-1]))
    return math.exp(vertex), False


def forecast_batch(noise: NoiseScales, fit: EpsMaxFit, batches, *,
                   reports: str | None = "lmech-report") -> Forecast:
    """The critical batch B_noise with its interval, and ε_opt(B) at `batches` (details.lr_at_batch).

    forecast: B_noise (examples); interval: B_noise ± 2 standard errors (sampling of the M
    per-example gradients), floored at 0. details: b_simple, eps_max (fitted) and its interval,
    eps_max_theory (|G|²/GᵀHG), lr_at_batch {B: [ε_opt, lo, hi]} and, for comparison, the
    linear-scaling rule from the smallest fitted batch.
    """
    table = {}
    for batch in batches:
        table[str(int(batch))] = [float(optimal_lr(batch, v, noise.b_noise)) for v in (fit.eps_max, fit.lo, fit.hi)]
    smallest = int(np.argmin(fit.batches))
    linear = {str(int(b)): fit.best_lrs[smallest] * b / fit.batches[smallest] for b in batches}
    se = noise.b_noise_se
    return Forecast(
        name="batch", forecast=noise.b_noise, interval=(max(noise.b_noise - 2 * se, 0.0), noise.b_noise + 2 * se),
        unit="examples (critical batch B_noise)",
        basis=(f"B_noise = tr(HΣ)/GᵀHG = {noise.b_noise:.4g} from {noise.examples} per-example gradients "
               f"(B_simple = {noise.b_simple:.4g}); ε_max = {fit.eps_max:.4g} fitted on batches "
               f"{', '.join(str(int(b)) for b in fit.batches)}"),
        phenomenon=PHENOMENON_NAME,
        track_record=track_record(PHENOMENON_NAME, reports) if reports is not None else None,
        details={"b_simple": noise.b_simple, "b_simple_se": noise.b_simple_se, "b_noise_se": se,
                 "eps_max": fit.eps_max, "eps_max_interval": [fit.lo, fit.hi],
                 "eps_max_theory": noise.eps_max, "fit_batches": list(fit.batches), "fit_best_lrs": list(fit.best_lrs),
                 "lr_at_batch": table, "linear_scaling_lr": linear,
                 "law": "eps_opt(B) = eps_max / (1 + B_noise / B) (McCandlish et al. 2018, eq. 2.6)"})


def measured_best_lr(model, loss_fn, data, batch: int, centre: float, *, half_width: int = 3, draws: int = 32,
                     steps: int = 1, progress: Callable[[], None] | None = None) -> tuple[float, bool]:
    """(best lr, at grid edge) of plain SGD at `batch`: the mean full-data loss after `steps` steps over
    `draws` minibatch draws (the same draws at every rate), on the grid `lr_grid(centre, half_width)`,
    refined by `best_lr_from_losses`. Cost: (2 half_width + 1) x draws short runs on copies of the model."""
    from lmech.forecast._check import OptimizerChoice, best_lr_at_batch

    grid = lr_grid(centre, half_width)
    _, means = best_lr_at_batch(model, loss_fn, data, OptimizerChoice("sgd"), batch, grid, steps,
                                seeds=range(draws), progress=progress)
    return best_lr_from_losses(grid, means)


def check_batches(batches, fit_count: int, data_size: int) -> list[int]:
    """The batch list, validated: integers >= 1 and <= the data size, at least fit_count + 1 of them
    (fit_count >= 2 fitted, the rest forecast), strictly increasing."""
    out = [int(b) for b in batches]
    if any(b < 1 for b in out):
        raise InputError(f"batch sizes must be >= 1, got {', '.join(str(b) for b in out)}")
    if any(b > data_size for b in out):
        raise InputError(f"batch sizes must be at most the data size {data_size}, got {max(out)}")
    if out != sorted(set(out)):
        raise InputError(f"batch sizes must be strictly increasing, got {', '.join(str(b) for b in out)}")
    if fit_count < 2 or len(out) <= fit_count:
        raise InputError(f"need at least 2 fitted batches and one more to forecast: {len(out)} batches, "
                         f"{fit_count} fitted")
    return out


def forecast_batch_for_model(model, loss_fn, data, batches, *, fit_count: int = 3, draws: int = 32,
                             steps: int = 1, examples: int | None = 256, seed: int = 0,
                             reports: str | None = "lmech-report",
                             progress: Callable[[int, int], None] | None = None) -> Forecast:
    """The whole forecast on a user's model: noise scales at its parameters, best lrs at the `fit_count`
    smallest batches (grids centred on the noiseless-quadratic ε_opt(B) from |G|²/GᵀHG), ε_max fitted, ε_opt
    at every batch. Cost: 3M + 3 gradients, plus fit_count x 7 x draws runs of `steps` steps."""
    from lmech.instruments._call import num_examples

    batches = check_batches(batches, fit_count, num_examples(data[0]))
    noise = hessian_noise_scale(model, loss_fn, data, examples=examples, seed=seed)
    total, done = fit_count * 7 * draws, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    fitted = [measured_best_lr(model, loss_fn, data, b, float(optimal_lr(b, noise.eps_max, noise.b_noise)),
                               draws=draws, steps=steps, progress=tick) for b in batches[:fit_count]]
    fit = fit_eps_max(batches[:fit_count], [lr for lr, _ in fitted], noise.b_noise)
    result = forecast_batch(noise, fit, batches, reports=reports)
    result.details.update({"fit_at_grid_edge": [int(edge) for _, edge in fitted], "steps": steps, "draws": draws})
    return result


def check_batch_forecast(model, loss_fn, data, result: Forecast, *, draws: int = 32, steps: int = 1,
                         tolerance: float = 1.5, progress: Callable[[int, int], None] | None = None) -> dict:
    """Held-out check: the best lr measured at every forecast batch beyond the fitted ones (grids of 9 rates
    factor 2^(1/4) centred on the forecast), the factor max(r, 1/r) to the forecast and to linear scaling.
    Needs batches spanning >= 32x. passed: every factor <= tolerance and no best rate at its grid edge."""
    table = result.details["lr_at_batch"]
    fitted = {int(b) for b in result.details["fit_batches"]}
    batches = sorted(int(b) for b in table)
    if batches[-1] < 32 * batches[0]:
        raise InputError(f"--check needs batches spanning at least 32x, got {batches[0]}..{batches[-1]}")
    held = [b for b in batches if b not in fitted]
    total, done = len(held) * 9 * draws, 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    rows = []
    for b in held:
        forecast = table[str(b)][0]
        best, edge = measured_best_lr(model, loss_fn, data, b, forecast, half_width=4, draws=draws, steps=steps,
                                      progress=tick)
        linear = result.details["linear_scaling_lr"][str(b)]
        rows.append({"batch": b, "forecast_lr": forecast, "measured_best_lr": best, "at_grid_edge": edge,
                     "factor": max(best / forecast, forecast / best), "linear_lr": linear,
                     "linear_factor": max(best / linear, linear / best)})
    worst = max(r["factor"] for r in rows)
    return {"rows": rows, "error": worst, "tolerance": tolerance,
            "passed": bool(worst <= tolerance and not any(r["at_grid_edge"] for r in rows)),
            "linear_factor_at_largest": rows[-1]["linear_factor"]}
