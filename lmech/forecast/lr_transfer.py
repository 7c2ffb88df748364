"""Forecast the loss-optimal learning rate at a target width from learning-rate sweeps at small widths.

One job: per proxy width, the optimum of a seed-averaged lr sweep; across widths, a power law
lr*(H) = c H^b (b fitted under SP; b = 0, "flat", under muP); the forecast at the target width
with an interval; and `--check`'s sweep at the target width on the same grid. It ignores how
members are trained (`_runs.py`).

Theory: under muP the optimal learning rate is width-independent (Yang et al. 2022, "Tensor
Programs V", Fig. 1 and Sec. 3); under SP it drifts with width, a power law for Adam with
exponent about -1 (TP V, Table 3: the hidden and output layers' updates grow as lr H), so the
exponent is fitted, not assumed.

Algorithm: losses (W, R, G) of W widths x R seeds x G log2-spaced lrs -> mean log loss over
seeds (a diverged member counts as +inf) -> the minimiser of a parabola through the lowest
grid point and its two neighbours in log2 lr (`optimal_log2_lr`) -> `fit_log_linear` of the
optimal lr on the width (bootstrap: seeds resampled per width, 200 replicates) -> the forecast
and its 95% interval (`_power_fit`). Cost of the fit: B x W x G parabolas, negligible; of a
sweep: W ensembles of R x G members.

Failure modes: an optimum on the edge of the grid at any proxy width (the sweep does not
bracket it: NotIdentifiableError, widen the grid); fewer than 2 proxy widths under SP, or 3 lrs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lmech.errors import InputError, NotIdentifiableError
from lmech.forecast._power_fit import LogLinearFit, fit_log_linear
from lmech.forecast.result import Forecast

__all__ = ["SCORED_OPTIMIZERS", "mean_log_loss", "optimal_log2_lr", "LrTransferFit", "fit_lr_transfer", "forecast_lr_transfer", "sweep_losses",
           "loss_at_log2_lr", "check_lr_transfer", "half_octave_grid", "run_lr_transfer", "PHENOMENON_NAME"]

PHENOMENON_NAME = "forecast-lr-transfer"
# the optimizer each parameterization's forecast is scored with in the atlas (its track record): SP with
# SGD (the tangent kernel grows like width, so lr* ~ 1/width), muP with Adam (Tensor Programs V)
SCORED_OPTIMIZERS = {"sp": "sgd", "mup": "adam"}
PARAMETERIZATIONS = ("sp", "mup")


def optimal_log2_lr(log2_lrs, log_losses) -> tuple[float, str | None]:
    """The minimiser in log2 lr of a parabola through the lowest point and its two neighbours.

    Args: log2_lrs (G,) increasing; log_losses (G,) (+inf: diverged).
    Returns (log2 lr*, edge): edge "low"/"high" when the lowest point is the first/last of the grid
    (lr* clamped there), "none" when every point diverged (NaN), else None. A concave parabola or a
    diverged neighbour leaves the lowest grid point; the vertex is clipped to the two neighbours.
    Algorithm: a 3-point quadratic fit (exact for a parabola), O(G). The atlas's transfer
    phenomena (`lmech.phenomena._lr_transfer`) use this same rule.
    """
    x, y = np.asarray(log2_lrs, dtype=float), np.asarray(log_losses, dtype=float)
    finite = np.isfinite(y)
    if not finite.any():
        return float("nan"), "none"
    i = int(np.argmin(np.where(finite, y, np.inf)))
    if i == 0:
        return float(x[0]), "low"
    if i == len(x) - 1:
        return float(x[-1]), "high"
    if not (finite[i - 1] and finite[i + 1]):
        return float(x[i]), None
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    if a <= 0:
        return float(x[i]), None
    return float(np.clip(-b / (2 * a), x[i - 1], x[i + 1])), None


def mean_log_loss(losses: np.ndarray) -> np.ndarray:
    """(..., R, G) -> (..., G): mean over seeds of log loss; +inf where any seed diverged (the fit's rule)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(losses) & (losses > 0), np.log(np.where(losses > 0, losses, 1.0)), np.inf)
    return logs.mean(axis=-2)


def loss_at_log2_lr(log2_lrs, losses, log2_lr: float) -> float:
    """The seed-averaged (geometric mean) loss of a sweep at log2_lr, linear in log loss between grid points.

    losses: (R, G). Outside the grid or next to a diverged point: +inf.
    """
    x, y = np.asarray(log2_lrs, dtype=float), mean_log_loss(np.asarray(losses, dtype=float))
    if not (x[0] <= log2_lr <= x[-1]):
        return math.inf
    j = int(np.clip(np.searchsorted(x, log2_lr) - 1, 0, len(x) - 2))
    if not (np.isfinite(y[j]) and np.isfinite(y[j + 1])):
        return math.inf
    t = (log2_lr - x[j]) / (x[j + 1] - x[j])
    return float(np.exp((1 - t) * y[j] + t * y[j + 1]))


@dataclass(frozen=True)
class LrTransferFit:
    """Per-width optima and the power law through them.

    widths (W,); log2_lrs (G,); log2_opt (W,); edges: one per width (None inside the grid);
    law: the log-log line of lr* on width (slope = the width exponent b); parameterization.
    """

    widths: np.ndarray
    log2_lrs: np.ndarray
    log2_opt: np.ndarray
    edges: list
    law: LogLinearFit
    parameterization: str

    @property
    def exponent(self) -> float:
        return self.law.slope

    @property
    def exponent_interval(self) -> tuple[float, float]:
        return self.law.slope_interval

    def predict(self, width: int | float) -> tuple[float, float, float]:
        """(lr*, low, high) at `width`: the 95% interval of the power law's forecast."""
        return self.law.predict(width)


def fit_lr_transfer(widths, log2_lrs, losses, parameterization: str = "sp", n_boot: int = 200,
                    seed: int = 0) -> LrTransferFit:
    """Fit lr*(H) from sweeps: widths (W,), log2_lrs (G,) increasing, losses (W, R, G) final losses.

    parameterization "sp": lr* = c H^b with b fitted; "mup": b = 0 (flat). The interval counts the
    scatter of the optima about the law and a bootstrap over seeds (R >= 2 needed for it).
    Raises NotIdentifiableError for a grid edge optimum, fewer than 3 lrs, or too few widths.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise InputError(f"parameterization must be sp or mup, got '{parameterization}'")
    widths, x = np.asarray(widths, dtype=float), np.asarray(log2_lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if x.ndim != 1 or len(x) < 3 or np.any(np.diff(x) <= 0):
        raise NotIdentifiableError(f"an lr sweep needs at least 3 increasing learning rates, got {len(x)}")
    if losses.shape[0] != len(widths) or losses.shape[-1] != len(x) or losses.ndim != 3:
        raise NotIdentifiableError(f"losses must be (widths, seeds, lrs) = ({len(widths)}, R, {len(x)}), "
                                   f"got {losses.shape}")
    need = 2 if parameterization == "sp" else 1
    if len(np.unique(widths)) < need:
        raise NotIdentifiableError(f"an {parameterization} lr-transfer fit needs at least {need} proxy widths, "
                                   f"got {len(np.unique(widths))}")
    fits = [optimal_log2_lr(x, mean_log_loss(losses[w])) for w in range(len(widths))]
    log2_opt = np.array([f[0] for f in fits])
    edges = [f[1] for f in fits]
    bad = [int(w) for w, e in zip(widths, edges) if e is not None]
    if bad:
        raise NotIdentifiableError(f"the lr sweep does not bracket the optimum at width(s) {bad} "
                                   f"({', '.join(str(e) for e in edges if e)} edge): widen the lr grid")
    rng = np.random.default_rng(seed)
    r = losses.shape[1]
    boot = None
    if r >= 2:
        boot = np.empty((n_boot, len(widths)))
        for b in range(n_boot):
            for w in range(len(widths)):
                pick = rng.integers(0, r, r)
                opt, edge = optimal_log2_lr(x, mean_log_loss(losses[w, pick]))
                boot[b, w] = 2.0 ** opt if edge is None else np.nan
    law = fit_log_linear(widths, 2.0 ** log2_opt, boot, slope=0.0 if parameterization == "mup" else None)
    return LrTransferFit(widths, x, log2_opt, edges, law, parameterization)


def forecast_lr_transfer(fit: LrTransferFit, target_width: int | float, track_record: dict | None = None) -> Forecast:
    """The Forecast record of lr* at `target_width` (unit: learning rate; interval: 95%, `_power_fit`)."""
    if not target_width > 0:
        raise InputError(f"the target width must be positive, got {target_width}")
    lr, low, high = fit.predict(target_width)
    b_low, b_high = fit.exponent_interval
    law = ("flat (muP): lr* = c" if fit.parameterization == "mup"
           else f"lr* ∝ width^{fit.exponent:.3g} [{b_low:.3g}, {b_high:.3g}]")
    basis = (f"{law}, fitted on the optima of lr sweeps at widths "
             f"{', '.join(f'{w:g}' for w in fit.widths)} ({', '.join(f'{2.0 ** o:.3g}' for o in fit.log2_opt)})")
    return Forecast(name="lr-transfer", forecast=lr, interval=(low, high), unit="learning rate", basis=basis,
                    phenomenon=PHENOMENON_NAME, track_record=track_record,
                    details={"target_width": float(target_width), "parameterization": fit.parameterization,
                             "proxy_widths": fit.widths.tolist(), "proxy_optima": (2.0 ** fit.log2_opt).tolist(),
                             "exponent": fit.exponent, "exponent_interval": [b_low, b_high],
                             "log2_lrs": fit.log2_lrs.tolist()})


def sweep_losses(runner, width: int, log2_lrs, seeds: int, steps: int, progress=None) -> np.ndarray:
    """Final training loss (mean over the last fifth of the recorded curve) of an lr sweep: (R, G).

    One ensemble of R x G members at `width`; a diverged member is +inf.
    """
    grid = [float(v) for v in log2_lrs]
    lrs = [2.0 ** v for s in range(seeds) for v in grid]
    members = [s for s in range(seeds) for _ in grid]
    curves = runner.curves(width, lrs, members, steps, "constant", max(steps // 10, 1), progress)
    tail = curves.steps >= 0.8 * steps
    final = curves.losses[:, tail]
    out = np.where(np.all(np.isfinite(final), axis=1), final.mean(axis=1) if final.size else np.inf, np.inf)
    return out.reshape(seeds, len(grid))


def check_lr_transfer(forecast: Forecast, log2_lrs, losses) -> dict:
    """--check: the held-out sweep at the target width (losses (R, G)) against the forecast.

    Returns the measured optimum, the forecast's error in octaves |log2(lr_forecast / lr_measured)|,
    and the relative excess loss at the forecast lr over the best point of the sweep.
    """
    x = np.asarray(log2_lrs, dtype=float)
    opt, edge = optimal_log2_lr(x, mean_log_loss(np.asarray(losses, dtype=float)))
    at_forecast = loss_at_log2_lr(x, losses, math.log2(forecast.forecast))
    best = float(np.exp(np.min(mean_log_loss(np.asarray(losses, dtype=float)))))
    return {"measured": 2.0 ** opt, "measured_edge": edge, "error_octaves": abs(math.log2(forecast.forecast) - opt),
            "inside_interval": bool(forecast.interval[0] <= 2.0 ** opt <= forecast.interval[1]),
            "loss_at_forecast": at_forecast, "best_loss": best,
            "excess_loss": at_forecast / best - 1 if math.isfinite(at_forecast) else math.inf}


def half_octave_grid(lr_min: float, lr_max: float, step: float = 0.5) -> list[float]:
    """log2 lrs from lr_min to lr_max (inclusive, rounded to the grid) every `step` octaves."""
    if not (lr_min > 0 and lr_max > lr_min):
        raise InputError(f"need 0 < lr-min < lr-max, got {lr_min} and {lr_max}")
    if not step > 0:
        raise InputError(f"the grid step must be positive, got {step} octaves")
    low, high = math.log2(lr_min), math.log2(lr_max)
    count = int(math.floor((high - low) / step + 1e-9)) + 1
    return [low + i * step for i in range(count)]


def run_lr_transfer(runner, proxies, target: int, log2_lrs, seeds: int, steps: int, parameterization: str = "sp",
                    check: bool = False, progress=None, track_record: dict | None = None) -> Forecast:
    """The whole forecast on a runner (`_runs.SpecRunner` / `DataRunner`): proxy sweeps, fit, forecast,
    and with check=True the held-out sweep at `target` on the same grid (Forecast.check filled).

    Cost: len(proxies) (+1 with check) ensembles of seeds x len(log2_lrs) members, `steps` steps each.
    """
    proxies = sorted({int(w) for w in proxies})
    if any(w <= 0 for w in proxies) or target <= 0:
        raise InputError("widths must be positive integers")
    if seeds < 1 or steps < 1:
        raise InputError("seeds and steps must be at least 1")
    jobs = len(proxies) + int(check)
    part = lambda j: (lambda done, total: progress(j * steps + done, jobs * steps)) if progress else None  # noqa: E731
    losses = np.stack([sweep_losses(runner, w, log2_lrs, seeds, steps, part(j)) for j, w in enumerate(proxies)])
    fit = fit_lr_transfer(proxies, log2_lrs, losses, parameterization)
    forecast = forecast_lr_transfer(fit, target, track_record)
    if not check:
        return forecast
    held = sweep_losses(runner, target, log2_lrs, seeds, steps, part(len(proxies)))
    result = check_lr_transfer(forecast, log2_lrs, held)
    result["passed"] = bool(result["error_octaves"] <= 0.5 and result["excess_loss"] <= 0.02
                            and result["measured_edge"] is None)
    result["rule"] = "within half an octave of the held-out optimum and loss within 2% of the held-out best"
    return Forecast(**{**forecast.__dict__, "check": result})
