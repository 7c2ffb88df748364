"""Forecast the compute-optimal model size and loss at a larger budget from IsoFLOP ladders at small ones.

One job: Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", Sec. 3.2,
Approach 2, Fig. 3): at each budget C train a ladder of model sizes N with D = C / (6 N) training
examples (the 6ND FLOP rule, Kaplan et al. 2020 Sec. 2.1), fit a parabola to the final loss
against log N, read the size N_opt(C) and loss L_opt(C) at its vertex, and fit the power laws
N_opt = k C^a and L_opt = l C^-g across budgets; forecast both at a held-out budget. It ignores
how the ladders are trained (`_runs.py`; the phenomenon uses lmech's trainer).

Units: C in FLOPs (6 N D), N in trainable parameters, D in training examples seen (steps x
batch). Interval of N_opt: a 95% prediction interval of the vertex a ladder at the held-out
budget will measure (`_power_fit.LogLinearFit.predict_new`): the line's uncertainty (residual
scatter plus a bootstrap over seeds) plus that vertex's own scatter about the law, Student-t with
B - 2 degrees of freedom (4 budgets: 2, q = 4.30), so few budgets give a wide band. Its coverage
is tested on synthetic Chinchilla-form ladders with seed noise (tests/forecast/test_compute.py).

Failure modes: a vertex outside the ladder's range (the ladder does not bracket the optimum) or a
concave parabola raises NotIdentifiableError; a loss with a floor the ladders approach bends
L_opt(C) away from a pure power law (the loss forecast, not the size forecast, then errs first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lmech.errors import InputError, NotIdentifiableError
from lmech.forecast._power_fit import LogLinearFit, fit_log_linear
from lmech.forecast.result import Forecast

__all__ = ["isoflop_vertex", "ComputeFit", "fit_compute_optimal", "forecast_compute", "ladder_steps",
           "check_compute", "train_ladder", "run_compute", "PHENOMENON_NAME", "FLOPS_PER_PARAMETER_EXAMPLE"]

PHENOMENON_NAME = "forecast-compute"
FLOPS_PER_PARAMETER_EXAMPLE = 6.0  # C = 6 N D (forward 2ND + backward 4ND)
NEIGHBOURS = None  # rungs on each side of the lowest one in the parabola fit (None: every rung)


def ladder_steps(budget: int | float, parameters: int, batch: int) -> int:
    """Training steps of a rung: D = C / (6 N) examples, in whole batches (at least 1)."""
    if not budget > 0:
        raise InputError(f"a compute budget must be positive, got {budget}")
    return max(int(round(budget / (FLOPS_PER_PARAMETER_EXAMPLE * parameters * batch))), 1)


def isoflop_vertex(sizes, losses) -> tuple[float, float, str | None]:
    """Vertex of the least-squares parabola loss = a (ln N)^2 + b ln N + c near one IsoFLOP ladder's minimum.

    Args: sizes (M,) parameters, M >= 3 distinct; losses (M,) seed-mean final losses.
    The parabola is fitted to every rung (NEIGHBOURS None; an int keeps only that many rungs on each
    side of the lowest one: less bias from the flanks, more noise; measured on forecast-compute's
    ladders the local 5-rung fit forecast x1.8 off, the full fit x1.2).
    Returns (N_opt, L_opt, edge): edge None inside the fitted rungs, "low"/"high" when the lowest
    rung is an end of the ladder or the vertex falls outside (N_opt: the nearest end), "concave"
    when a <= 0 (N_opt: the best rung).
    """
    n, y = np.asarray(sizes, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(y)
    if keep.sum() < 3 or len(np.unique(n[keep])) < 3:
        raise NotIdentifiableError(f"an IsoFLOP ladder needs at least 3 sizes with finite losses, got {int(keep.sum())}")
    n, y = n[keep], y[keep]
    order = np.argsort(n)
    n, y = n[order], y[order]
    best = int(np.argmin(y))
    if best == 0 or best == len(n) - 1:  # the lowest rung at an end: the ladder does not bracket the optimum
        return float(n[best]), float(y[best]), "low" if best == 0 else "high"
    window = slice(0, len(n)) if NEIGHBOURS is None else slice(max(best - NEIGHBOURS, 0), min(best + NEIGHBOURS + 1, len(n)))
    n, y = n[window], y[window]
    x = np.log(n)
    a, b, c = np.polyfit(x, y, 2)
    if a <= 0:
        i = int(np.argmin(y))
        return float(n[i]), float(y[i]), "concave"
    vertex = -b / (2 * a)
    edge = "low" if vertex < x.min() else "high" if vertex > x.max() else None
    vertex = float(np.clip(vertex, x.min(), x.max()))
    return float(math.exp(vertex)), float(a * vertex**2 + b * vertex + c), edge


def _parabola_at(sizes, losses, size: float) -> float:
    n, y = np.asarray(sizes, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(y)
    a, b, c = np.polyfit(np.log(n[keep]), y[keep], 2)
    x = math.log(size)
    return float(a * x * x + b * x + c)


@dataclass(frozen=True)
class ComputeFit:
    """Per-budget vertices and the power laws through them: budgets (B,), n_opt (B,), l_opt (B,)."""

    budgets: np.ndarray
    n_opt: np.ndarray
    l_opt: np.ndarray
    size_law: LogLinearFit
    loss_law: LogLinearFit

    @property
    def exponent(self) -> float:
        """a of N_opt ∝ C^a (Chinchilla: about 0.5)."""
        return self.size_law.slope


def _vertices(sizes, losses, pick=None):
    out = []
    for b, (n, table) in enumerate(zip(sizes, losses)):
        rows = table if pick is None else table[pick[b]]
        with np.errstate(invalid="ignore"):
            mean = np.where(np.all(np.isfinite(rows), axis=0), rows.mean(axis=0), np.nan)
        out.append(isoflop_vertex(n, mean))
    return out


def fit_compute_optimal(budgets, sizes, losses, n_boot: int = 200, seed: int = 0) -> ComputeFit:
    """Fit N_opt(C) and L_opt(C) from IsoFLOP ladders.

    Args:
        budgets: (B,) FLOPs, B >= 2 distinct.
        sizes: B arrays (M_b,) of the rungs' parameter counts.
        losses: B arrays (R, M_b) of final losses per seed and rung (+inf or NaN: diverged).
    Raises NotIdentifiableError when a ladder does not bracket its optimum or is too small.
    """
    budgets = np.asarray(budgets, dtype=float)
    if len(budgets) != len(sizes) or len(budgets) != len(losses):
        raise NotIdentifiableError("one ladder of sizes and losses per budget")
    if len(np.unique(budgets)) < 2 or np.any(budgets <= 0):
        raise NotIdentifiableError(f"a compute-optimal fit needs at least 2 distinct positive budgets, got {budgets}")
    losses = [np.atleast_2d(np.asarray(t, dtype=float)) for t in losses]
    vertices = _vertices(sizes, losses)
    bad = [f"{c:.3g}" for c, v in zip(budgets, vertices) if v[2] is not None]
    if bad:
        raise NotIdentifiableError(f"the IsoFLOP ladder at budget(s) {', '.join(bad)} does not bracket its optimum "
                                   f"({', '.join(v[2] for v in vertices if v[2])}): add sizes on that side")
    rng = np.random.default_rng(seed)
    boot_n, boot_l = [], []
    if all(t.shape[0] >= 2 for t in losses):
        for _ in range(n_boot):
            pick = [rng.integers(0, t.shape[0], t.shape[0]) for t in losses]
            v = _vertices(sizes, losses, pick)
            ok = all(e is None for _, _, e in v)
            boot_n.append([x[0] if ok else np.nan for x in v])
            boot_l.append([x[1] if ok else np.nan for x in v])
    n_opt = np.array([v[0] for v in vertices])
    l_opt = np.array([v[1] for v in vertices])
    size_law = fit_log_linear(budgets, n_opt, np.array(boot_n) if boot_n else None)
    loss_law = fit_log_linear(budgets, l_opt, np.array(boot_l) if boot_l else None)
    return ComputeFit(budgets, n_opt, l_opt, size_law, loss_law)


def forecast_compute(fit: ComputeFit, budget: int | float, track_record: dict | None = None) -> Forecast:
    """The Forecast record of N_opt at `budget` (unit: parameters; interval: the 95% prediction interval of
    the vertex a ladder at `budget` measures); the loss forecast in details."""
    if not budget > 0:
        raise InputError(f"a compute budget must be positive, got {budget}")
    n, n_low, n_high = fit.size_law.predict_new(budget)
    loss, l_low, l_high = fit.loss_law.predict(budget)
    basis = (f"IsoFLOP vertices at budgets {', '.join(f'{c:.3g}' for c in fit.budgets)} FLOPs "
             f"(N_opt {', '.join(f'{v:.3g}' for v in fit.n_opt)}); N_opt ∝ C^{fit.exponent:.3g}")
    return Forecast(name="compute", forecast=n, interval=(n_low, n_high), unit="parameters", basis=basis,
                    phenomenon=PHENOMENON_NAME, track_record=track_record,
                    details={"budget": float(budget), "examples": budget / (FLOPS_PER_PARAMETER_EXAMPLE * n),
                             "loss": loss, "loss_interval": [l_low, l_high], "size_exponent": fit.exponent,
                             "size_exponent_interval": list(fit.size_law.slope_interval),
                             "loss_exponent": -fit.loss_law.slope, "budgets": fit.budgets.tolist(),
                             "n_opt": fit.n_opt.tolist(), "l_opt": fit.l_opt.tolist()})


def check_compute(forecast: Forecast, sizes, losses) -> dict:
    """--check: the held-out ladder (sizes (M,), losses (R, M)) at the forecast's budget.

    Returns the measured N_opt, the ratio forecast / measured, whether the measured N_opt is inside
    the interval, and the excess of the ladder parabola's loss at the forecast size over its minimum.
    """
    table = np.atleast_2d(np.asarray(losses, dtype=float))
    mean = np.where(np.all(np.isfinite(table), axis=0), table.mean(axis=0), np.nan)
    n_opt, l_opt, edge = isoflop_vertex(sizes, mean)
    at_forecast = _parabola_at(sizes, mean, forecast.forecast)
    best = min(l_opt, float(np.nanmin(mean)))
    predicted_loss = forecast.details.get("loss", math.nan)
    return {"measured": n_opt, "measured_edge": edge, "measured_loss": l_opt,
            "ratio": forecast.forecast / n_opt, "factor_error": max(forecast.forecast / n_opt, n_opt / forecast.forecast),
            "inside_interval": bool(forecast.interval[0] <= n_opt <= forecast.interval[1]),
            "loss_at_forecast": at_forecast, "excess_loss": at_forecast / best - 1,
            "loss_forecast_error": abs(predicted_loss / l_opt - 1) if math.isfinite(predicted_loss) else math.nan}


MIN_STEPS = 8  # a rung shorter than this many steps is left out of its ladder


def train_ladder(runner, widths, budget: float, lr: float, seeds: int, progress=None,
                 max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One IsoFLOP ladder on a runner: (sizes (M,), final losses (R, M)) for the widths whose run at
    `budget` lasts MIN_STEPS..max_steps steps (None: no upper limit; the longest runs are the
    smallest models, far below the optimum at large budgets).

    Each rung trains `seeds` members for ladder_steps(budget, N(width), batch) steps at a constant lr;
    its loss is the last recorded value of the runner's metric.
    """
    batch = runner.batch_size
    rungs = [(w, runner.parameters(w)) for w in sorted({int(w) for w in widths})]
    rungs = [(w, n, ladder_steps(budget, n, batch)) for w, n in rungs]
    rungs = [r for r in rungs if r[2] >= MIN_STEPS and (max_steps is None or r[2] <= max_steps)]
    if len(rungs) < 3:
        raise InputError(f"budget {budget:.3g} FLOPs leaves {len(rungs)} of the widths {MIN_STEPS}.."
                         f"{max_steps or 'any'} steps (need 3): change the budget or the widths")
    total = sum(r[2] for r in rungs)
    done = 0
    sizes, losses = [], []
    for w, n, steps in rungs:
        hook = (lambda d, t, base=done: progress(base + d, total)) if progress else None
        curves = runner.curves(w, [lr] * seeds, list(range(seeds)), steps, "constant", max(steps // 4, 1), hook)
        done += steps
        sizes.append(n)
        losses.append(curves.losses[:, -1])
    return np.asarray(sizes, dtype=float), np.stack(losses, axis=1)


def run_compute(runner, widths, budgets, target_budget: float, lr: float, seeds: int, check: bool = False,
                progress=None, track_record: dict | None = None, max_steps: int | None = None) -> Forecast:
    """The whole forecast on a runner: ladders at `budgets`, the fit, the forecast at `target_budget`, and
    with check=True the held-out ladder there (Forecast.check filled; passes like the atlas verdict:
    within a factor 1.5, inside the interval, loss at the forecast size within 1% of the ladder's minimum)."""
    budgets = [float(c) for c in budgets]
    if any(not c > 0 for c in budgets + [float(target_budget)]):
        raise InputError(f"compute budgets must be positive, got {budgets + [target_budget]}")
    if seeds < 1 or not lr > 0:
        raise InputError("seeds must be at least 1 and the lr positive")
    jobs = len(budgets) + int(check)
    part = lambda j: (lambda d, t: progress(j * 1000 + int(1000 * d / max(t, 1)), jobs * 1000)) if progress else None  # noqa: E731
    ladders = [train_ladder(runner, widths, c, lr, seeds, part(j), max_steps) for j, c in enumerate(budgets)]
    fit = fit_compute_optimal(budgets, [s for s, _ in ladders], [l for _, l in ladders])
    forecast = forecast_compute(fit, target_budget, track_record)
    if not check:
        return forecast
    sizes, losses = train_ladder(runner, widths, target_budget, lr, seeds, part(len(budgets)), max_steps)
    result = check_compute(forecast, sizes, losses)
    result["passed"] = bool(result["factor_error"] <= 1.5 and result["inside_interval"]
                            and result["excess_loss"] <= 0.01 and result["measured_edge"] is None)
    result["rule"] = "measured N_opt within x1.5 of the forecast and inside its interval; loss within 1% of the minimum"
    return Forecast(**{**forecast.__dict__, "check": result})
