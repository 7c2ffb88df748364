"""Forecast a whole loss curve under a new learning-rate schedule from one constant and one cosine run.

One job: the schedule-aware loss-curve law of Tissue et al. 2024 ("Scaling Law with Learning
Rate Annealing", arXiv:2408.11029, Eq. 1 and Eq. 4):

    L(s) = L0 + A * S1(s)^(-alpha) - C * S2(s),
    S1(s) = sum_{i=1..s} eta_i                       (forward area),
    S2(s) = sum_{i=1..s} m_i,  m_i = lam * m_{i-1} + (eta_{i-1} - eta_i),  m_0 = 0, eta_0 = eta_1
                                                     (annealing area, momentum form),

eta_i the learning rate of step i in units of the peak learning rate (so A and C are in loss
units), lam the annealing momentum (the paper: 0.99 to 0.999). Fitted on the curves of the
fitting runs (the paper fits one constant and one cosine run), it forecasts the curve of any
schedule with the same peak learning rate; the schedule-blind baseline L0 + A s^(-alpha) is
fitted on the same points for comparison. It ignores how the runs are trained (`_runs.py`).

Algorithm (variable projection): for fixed (alpha, lam) the law is linear in (L0, A, C), solved by
weighted least squares on relative residuals (weights 1/L: the paper fits the relative error);
alpha is minimised on a grid of 80 values in (0.02, 3) then refined by a bounded scalar search,
for each lam of LAMBDAS, and the best (alpha, lam) by the fitting runs' residual is kept. Points
at steps below FIT_FROM of each run are left out (the first steps are the initial transient,
where S1 -> 0 and S1^-alpha diverges; the paper also drops the warmup). Cost: about
|LAMBDAS| x 100 small least-squares solves; a bootstrap over seeds repeats it B times.

Failure modes: C is constrained >= 0 and A >= 0 (clipped by a non-negative solve), so a
data set in which annealing raises the loss is fitted with C = 0; schedules with a different
peak learning rate than the fitting runs are outside the law's form (the paper's Sec. 5 adds
an lr-dependent term); lam at the end of LAMBDAS means the grid should be widened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar, nnls

from lmech.errors import InputError, NotIdentifiableError
from lmech.forecast.result import Forecast

__all__ = ["schedule_areas", "CurveLaw", "fit_curve_law", "fit_blind_power_law", "max_relative_error",
           "lr_schedule", "forecast_curve", "mean_curve", "run_curve", "LAMBDAS", "FIT_FROM", "PHENOMENON_NAME"]

PHENOMENON_NAME = "forecast-curve"
LAMBDAS = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
FIT_FROM = 0.1  # fraction of each run's steps before which points are not fitted
_ALPHAS = np.geomspace(0.02, 3.0, 80)


def lr_schedule(schedule: str, steps: int, warmup_steps: int = 0) -> np.ndarray:
    """(S,) learning-rate factors eta_1..eta_S of an lmech schedule (lmech.train.schedule.lr_factor)."""
    from lmech.train.schedule import lr_factor

    return np.array([lr_factor(schedule, step, steps, warmup_steps) for step in range(steps)], dtype=float)


def schedule_areas(etas, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """S1 and S2 after each step: etas (S,) -> two (S + 1,) arrays indexed by step 0..S (0 at step 0).

    S1(s) = sum_{i<=s} eta_i; m_i = lam m_{i-1} + (eta_{i-1} - eta_i) with eta_0 = eta_1; S2(s) = sum m_i
    (Tissue et al. 2024, Eq. 4). A constant schedule has S2 = 0.
    """
    eta = np.asarray(etas, dtype=float)
    if eta.ndim != 1 or len(eta) == 0 or np.any(eta < 0) or not np.all(np.isfinite(eta)):
        raise InputError("a schedule must be a non-empty vector of non-negative learning rates")
    if not 0 <= lam < 1:
        raise InputError(f"the annealing momentum must be in [0, 1), got {lam}")
    drops = np.diff(np.concatenate([eta[:1], eta]))  # eta_i - eta_{i-1}
    m = np.empty_like(eta)
    level = 0.0
    for i, d in enumerate(drops):
        level = lam * level - d
        m[i] = level
    return np.concatenate([[0.0], np.cumsum(eta)]), np.concatenate([[0.0], np.cumsum(m)])


@dataclass(frozen=True)
class CurveLaw:
    """Fitted (L0, A, alpha, C, lam) of L = L0 + A S1^-alpha - C S2; blind=True: L0 + A s^-alpha (C = 0)."""

    l0: float
    a: float
    alpha: float
    c: float
    lam: float
    blind: bool = False
    rms_relative: float = math.nan  # on the fitted points

    def predict(self, etas, steps) -> np.ndarray:
        """Losses at `steps` (T,) of a run with schedule `etas` (S,) (factors of the peak lr); NaN
        where the law is undefined (no learning-rate area yet: S1 = 0, e.g. step 0)."""
        steps = np.asarray(steps, dtype=int)
        if self.blind:
            s = steps.astype(float)
            with np.errstate(divide="ignore"):
                return np.where(s > 0, self.l0 + self.a * np.where(s > 0, s, 1.0) ** (-self.alpha), np.nan)
        s1, s2 = schedule_areas(etas, self.lam)
        x1 = s1[steps]
        return np.where(x1 > 0, self.l0 + self.a * np.where(x1 > 0, x1, 1.0) ** (-self.alpha) - self.c * s2[steps],
                        np.nan)

    def to_json(self) -> dict:
        return {"L0": self.l0, "A": self.a, "alpha": self.alpha, "C": self.c, "lambda": self.lam,
                "blind": self.blind, "rms_relative": self.rms_relative}


def _points(runs, lam: float | None):
    """Stack the fitting points: (x1, x2, L) over all runs, steps >= FIT_FROM * S and >= 1."""
    x1, x2, y = [], [], []
    for etas, steps, losses in runs:
        steps, losses = np.asarray(steps, dtype=int), np.asarray(losses, dtype=float)
        total = len(etas)
        keep = (steps >= max(FIT_FROM * total, 1)) & np.isfinite(losses) & (steps <= total)
        if lam is None:
            x1.append(steps[keep].astype(float))
            x2.append(np.zeros(int(keep.sum())))
        else:
            s1, s2 = schedule_areas(etas, lam)
            x1.append(s1[steps[keep]])
            x2.append(s2[steps[keep]])
        y.append(losses[keep])
    return np.concatenate(x1), np.concatenate(x2), np.concatenate(y)


def _solve(alpha: float, x1, x2, y, with_c: bool):
    """Non-negative weighted least squares for (L0, A, C) at fixed alpha: (coefficients, rms relative)."""
    columns = [np.ones_like(y), x1 ** (-alpha)] + ([-x2] if with_c else [])
    design = np.stack(columns, axis=1) / y[:, None]
    coef, norm = nnls(design, np.ones_like(y))
    return coef, float(norm / math.sqrt(len(y)))


def _fit(runs, lam: float | None) -> CurveLaw:
    x1, x2, y = _points(runs, lam)
    if len(y) < 5 or np.any(y <= 0):
        raise NotIdentifiableError(f"a loss-curve fit needs at least 5 positive losses past the first "
                                   f"{FIT_FROM:.0%} of each run, got {len(y)}")
    with_c = lam is not None
    errors = [_solve(a, x1, x2, y, with_c)[1] for a in _ALPHAS]
    i = int(np.argmin(errors))
    lo, hi = _ALPHAS[max(i - 1, 0)], _ALPHAS[min(i + 1, len(_ALPHAS) - 1)]
    best = minimize_scalar(lambda a: _solve(a, x1, x2, y, with_c)[1], bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-5})
    alpha = float(best.x) if best.fun <= errors[i] else float(_ALPHAS[i])
    coef, rms = _solve(alpha, x1, x2, y, with_c)
    return CurveLaw(float(coef[0]), float(coef[1]), alpha, float(coef[2]) if with_c else 0.0,
                    float(lam) if with_c else math.nan, blind=not with_c, rms_relative=rms)


def fit_curve_law(runs, lambdas=LAMBDAS) -> CurveLaw:
    """Fit Tissue et al.'s law on `runs`: a list of (etas (S,), steps (T,), losses (T,)) (seed-mean curves).

    etas: each run's lr factors (peak 1); steps: the recorded steps (0..S); losses: the loss there.
    Returns the best law over `lambdas` by the relative rms residual on the fitted points.
    """
    if not runs:
        raise NotIdentifiableError("a loss-curve fit needs at least one run")
    return min((_fit(runs, lam) for lam in lambdas), key=lambda law: law.rms_relative)


def fit_blind_power_law(runs) -> CurveLaw:
    """The schedule-blind baseline L0 + A s^-alpha fitted on the same points (ignores the schedules)."""
    return _fit(runs, None)


def max_relative_error(predicted, measured, steps, total_steps: int) -> float:
    """max |pred - meas| / meas over the second half of training (steps >= total_steps / 2)."""
    steps, p, m = np.asarray(steps), np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    half = steps >= total_steps / 2
    if not half.any():
        raise NotIdentifiableError("no recorded step in the second half of training")
    return float(np.max(np.abs(p[half] - m[half]) / np.abs(m[half])))


def forecast_curve(law: CurveLaw, etas, steps, boot_laws=(), track_record: dict | None = None,
                   schedule: str = "") -> Forecast:
    """The Forecast record of the final loss of schedule `etas` (the curve in details["curve"]).

    Interval: the 2.5%-97.5% range of the final loss over `boot_laws` (laws refitted on seed
    bootstrap replicates), widened to include the point forecast; the point alone without them.
    """
    curve = law.predict(etas, steps)
    finals = [float(b.predict(etas, steps)[-1]) for b in boot_laws]
    low, high = (min(np.percentile(finals, 2.5), curve[-1]), max(np.percentile(finals, 97.5), curve[-1])) \
        if finals else (float(curve[-1]), float(curve[-1]))
    basis = (f"L = {law.l0:.4g} + {law.a:.4g} S1^-{law.alpha:.3g} - {law.c:.4g} S2 (lambda {law.lam:g}), "
             f"fitted on a constant and a cosine run (rms relative residual {law.rms_relative:.2%})")
    return Forecast(name="curve", forecast=float(curve[-1]), interval=(float(low), float(high)), unit="loss",
                    basis=basis, phenomenon=PHENOMENON_NAME, track_record=track_record,
                    details={"schedule": schedule, "steps": [int(s) for s in steps], "curve": curve.tolist(),
                             "law": law.to_json()})


def mean_curve(curves) -> tuple[np.ndarray, np.ndarray]:
    """Seed-mean of a runner's Curves over the members that never diverged: (steps (T,), loss (T,))."""
    keep = np.all(np.isfinite(curves.losses), axis=1)
    if not keep.any():
        raise InputError("every member diverged: lower the learning rate")
    return curves.steps, curves.losses[keep].mean(axis=0)


def run_curve(runner, width: int, lr: float, steps: int, schedule: str, target_steps: int, seeds: int,
              every: int | None = None,
              check: bool = False, progress=None, track_record: dict | None = None, n_boot: int = 50) -> Forecast:
    """The whole forecast on a runner: a constant and a cosine run of `steps` steps at peak `lr` (seeds
    members each), the law fitted on their seed-mean curves, the forecast of `schedule` over
    `target_steps`, and with check=True that run (Forecast.check: max relative error over its second
    half, and the schedule-blind power law's, as in the atlas verdict: the law within 2%)."""
    from lmech.spec import OptimizerSpec

    allowed = OptimizerSpec.model_fields["schedule"].annotation.__args__
    if schedule not in allowed:
        raise InputError(f"--schedule must be one of {', '.join(allowed)}, got '{schedule}'")
    if steps < 10 or target_steps < 10 or seeds < 1 or not lr > 0:
        raise InputError("steps and target steps must be at least 10, seeds at least 1 and the lr positive")
    every = every or max(steps // 50, 1)
    jobs = 2 + int(check)
    part = lambda j: (lambda d, t: progress(j * 1000 + int(1000 * d / max(t, 1)), jobs * 1000)) if progress else None  # noqa: E731
    fitted = []
    for j, name in enumerate(("constant", "cosine")):
        curves = runner.curves(width, [lr] * seeds, list(range(seeds)), steps, name, every, part(j))
        fitted.append((lr_schedule(name, steps), curves))
    runs = [(etas, *mean_curve(c)) for etas, c in fitted]
    law, blind = fit_curve_law(runs), fit_blind_power_law(runs)
    rng = np.random.default_rng(0)
    boots = []
    if seeds >= 2:
        for _ in range(n_boot):
            picked = []
            for etas, c in fitted:
                rows = c.losses[np.all(np.isfinite(c.losses), axis=1)]
                picked.append((etas, c.steps, rows[rng.integers(0, len(rows), len(rows))].mean(axis=0)))
            boots.append(fit_curve_law(picked))
    target_etas = lr_schedule(schedule, target_steps)
    target_grid = np.array(sorted({*range(0, target_steps + 1, every), target_steps}))
    forecast = forecast_curve(law, target_etas, target_grid, boots, track_record, f"{schedule}/{target_steps}")
    if not check:
        return forecast
    held = runner.curves(width, [lr] * seeds, list(range(seeds)), target_steps, schedule, every, part(2))
    grid, loss = mean_curve(held)
    error = max_relative_error(law.predict(target_etas, grid), loss, grid, target_steps)
    blind_error = max_relative_error(blind.predict(target_etas, grid), loss, grid, target_steps)
    result = {"measured": float(loss[-1]), "max_relative_error": error, "blind_max_relative_error": blind_error,
              "passed": bool(error <= 0.02), "rule": "max relative error over the second half of training <= 2%",
              "measured_curve": loss.tolist()}
    return Forecast(**{**forecast.__dict__, "check": result})
