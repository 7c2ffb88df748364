"""Forecast max-lr: the divergence learning rate of full-batch GD on MSE lies in the curvature window at init.

Claim (Cohen et al. 2021; Lewkowycz et al. 2020): full-batch GD on the squared loss is linearly
stable below 2/λ0 (λ0 the top Hessian eigenvalue at initialization) and, through the catapult
mechanism, still converges somewhat above it: up to ~4/λ0 for smooth networks and ~12/λ0 for
ReLU networks. So the divergence learning rate lies in [2/λ0, 4/λ0] (smooth) or [2/λ0, 12/λ0]
(ReLU): the window `lmech forecast max-lr` prints.

Experiment: five MLPs in the NTK parameterization (the setting of Lewkowycz et al.'s theory) on a
teacher-student regression task (256 examples, 16 inputs, label noise 0.1, MSE): tanh 32x1,
tanh 64x2, ReLU 128x2, GELU 64x3, ReLU 256x1 (width x depth). Under lmech's SP initialization
(larger outputs at init, λ0 up to 170) the same five gave divergence lr / (2/λ0) of 1.6, 2.0, 15,
4.5 and 4.6 in a fast run: 3 of 5 inside, the catapult window being a wide-network NTK result. For
each, one ensemble job of full-batch GD runs on a fixed geometric lr grid (factor 2^(1/2) fast,
2^(1/4) full) from the same initialization. The same five models are also trained with
heavy-ball momentum (β = 0.9) and Adam (β1 = 0.9) on their own grids.

Measurement: λ0 (Lanczos) of each model's initialization, rebuilt from its seed; for Adam
λ_P = top eigenvalue of P⁻¹H with P = |G| + eps (`lmech.forecast.max_lr.forecast_max_lr`, the
command's own function). The divergence lr is the geometric mean of the largest grid rate whose
final training loss is at most its initial loss and the smallest one above it that ends higher
(or non-finite) after STEPS steps (a catapult that comes back down is not divergence).

Verdict: GD: at least MIN_INSIDE of the five divergence rates inside their windows; the error is
the number outside (<= 5 - MIN_INSIDE). Reported, with their own stated tolerances, not gating:
momentum inside (2+2β)/λ0 x/÷ 2, Adam at or above (2+2β1)/((1-β1)λ_P) (Adam's edge of stability,
a lower bound on divergence).

Scope: initialization only, full batch, 150 (fast) or 300 steps. Sources: Cohen, Kaur, Li, Kolter &
Talwalkar 2021 (ICLR), Sec. 2 and App.; Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020,
"The large learning rate phase of deep learning: the catapult mechanism", Secs. 2-3; Cohen et
al. 2022, "Adaptive gradient methods at the edge of stability", Sec. 2.
"""

from __future__ import annotations

import math

import numpy as np

from lmech.forecast._check import OptimizerChoice
from lmech.forecast.max_lr import CATAPULT_FACTOR, RELU_CATAPULT_FACTOR, forecast_max_lr, max_lr_window
from lmech.instruments.losses import named_loss
from lmech.models.family import build_model
from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.teacher_student import TeacherStudentSpec

__all__ = ["PHENOMENON", "runs", "predict", "measure", "compare", "figure", "MODELS", "MIN_INSIDE",
           "divergence_lr", "window_counts"]

MODELS = (("tanh", 32, 1), ("tanh", 64, 2), ("relu", 128, 2), ("gelu", 64, 3), ("relu", 256, 1))
MIN_INSIDE = 4
BETA, BETA1 = 0.9, 0.9
_TASK = TeacherStudentSpec(n_train=256, n_test=64, input_dim=16, noise=0.1)
_OPTIMIZERS = ("sgd", "momentum", "adam")
_GRID_RANGE = {"sgd": (-4.0, 3.0), "momentum": (-5.0, 2.0), "adam": (-6.0, 3.0)}  # log2 lr; λ0 is 3-5 here


def _steps(fast: bool) -> int:
    return 150 if fast else 300


def _grid(optimizer: str, fast: bool) -> list[float]:
    lo, hi = _GRID_RANGE[optimizer]
    per_octave = 2 if fast else 4
    return [2.0 ** (lo + j / per_octave) for j in range(int((hi - lo) * per_octave) + 1)]


def _model(activation: str, width: int, depth: int) -> ModelSpec:
    return ModelSpec(width=width, depth=depth, activation=activation, parameterization="ntk")


def _optimizer(name: str, lr: float) -> OptimizerSpec:
    if name == "adam":
        return OptimizerSpec(name="adam", lr=lr, beta1=BETA1)
    return OptimizerSpec(name="sgd", lr=lr, momentum=BETA if name == "momentum" else 0.0)


def _optimizer_name(spec: RunSpec) -> str:
    if spec.optimizer.name == "adam":
        return "adam"
    return "momentum" if spec.optimizer.momentum > 0 else "sgd"


def runs(fast: bool) -> list[RunSpec]:
    steps = _steps(fast)
    return [RunSpec(task=_TASK, model=_model(*m), steps=steps, seed=0, loss="mse",
                    optimizer=_optimizer(name, lr), observe={"loss": ObserveSpec(every=steps)})
            for name in _OPTIMIZERS for m in MODELS for lr in _grid(name, fast)]


def predict(specs: list[RunSpec]) -> dict:
    """The windows in units of the curvature (theory only): lr x λ0 for GD and momentum, lr x λ_P for Adam."""
    units = {}
    for activation, _, _ in MODELS:
        _, lo, hi = max_lr_window(1.0, OptimizerChoice("sgd"), "mse", piecewise_linear=activation == "relu")
        units[activation] = (lo, hi)
    _, mlo, mhi = max_lr_window(1.0, OptimizerChoice("momentum", momentum=BETA), "mse")
    adam, _, _ = max_lr_window(1.0, OptimizerChoice("adam", betas=(BETA1, 0.999)), "mse")
    return {"gd_window_times_curvature": units, "momentum_window_times_curvature": (mlo, mhi),
            "adam_lower_bound_times_curvature": adam, "min_inside": MIN_INSIDE,
            "catapult_factor": CATAPULT_FACTOR, "relu_catapult_factor": RELU_CATAPULT_FACTOR}


def divergence_lr(lrs, initial, final) -> tuple[float, float, float]:
    """(stable, unstable, geometric mean): the largest rate that ended at or below its start before the
    first rate above it that ended higher (or non-finite). (top, inf, inf) when every rate trained;
    nan when even the smallest diverged."""
    order = np.argsort(lrs)
    lrs = np.asarray(lrs, dtype=float)[order]
    ok = np.asarray([f <= i for i, f in zip(np.asarray(initial)[order], np.asarray(final)[order])])
    if not ok[0]:
        return math.nan, math.nan, math.nan
    if ok.all():  # stable up to the grid's top: the divergence rate is above it
        return float(lrs[-1]), math.inf, math.inf
    first_bad = int(np.argmin(ok))
    stable, unstable = lrs[first_bad - 1], lrs[first_bad]
    return float(stable), float(unstable), float(math.sqrt(stable * unstable))


def _initial_module(spec: RunSpec):
    task = make_task(spec.task, spec.data_seed if spec.data_seed is not None else spec.seed)
    module = build_model(spec.model, tuple(task.x_train.shape[1:]), task.output_dim, None, spec.seed)
    return module, (task.x_train, task.y_train)


def _final_loss(store, spec: RunSpec) -> tuple[float, float]:
    steps, values = store.series(spec.id, "loss/train")
    initial = values[0] if steps and steps[0] == 0 else math.nan
    finished = steps and steps[-1] == spec.steps and math.isfinite(values[-1])
    return initial, values[-1] if finished else math.inf


def measure(store, specs: list[RunSpec]) -> dict:
    """Per optimizer and model: the forecast (from the rebuilt initialization) and the grid's divergence bracket."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        key = (_optimizer_name(spec), spec.model.activation, spec.model.width, spec.model.depth)
        groups.setdefault(key, []).append(spec)
    rows = []
    for (name, activation, width, depth), members in sorted(groups.items()):
        module, data = _initial_module(members[0])
        choice = OptimizerChoice(name, momentum=BETA, betas=(BETA1, 0.999))
        forecast = forecast_max_lr(module, named_loss("mse"), data, "mse", choice,
                                   piecewise_linear=activation == "relu", reports=None)
        losses = [_final_loss(store, s) for s in members]
        stable, unstable, lr = divergence_lr([s.optimizer.lr for s in members], [a for a, _ in losses],
                                             [b for _, b in losses])
        low, high = forecast.interval
        inside = bool(not math.isnan(lr) and low <= lr <= high)
        rows.append({"optimizer": name, "model": f"{activation} {width}x{depth}", "curvature": forecast.details["curvature"],
                     "forecast": forecast.forecast, "low": low, "high": high, "stable": stable, "unstable": unstable,
                     "divergence_lr": lr, "ratio": lr / forecast.forecast, "inside": inside})
    return {"rows": rows}


def window_counts(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """{optimizer: (inside, total)} over the measured rows."""
    out = {}
    for name in _OPTIMIZERS:
        chosen = [r for r in rows if r["optimizer"] == name]
        out[name] = (sum(bool(r["inside"]) for r in chosen), len(chosen))
    return out


def compare(prediction: dict, measurement: dict) -> Comparison:
    rows = measurement["rows"]
    counts = window_counts(rows)
    inside, total = counts["sgd"]
    outside = total - inside
    allowed = len(MODELS) - prediction["min_inside"]
    bracketed = all(math.isfinite(r["divergence_lr"]) for r in rows if r["optimizer"] == "sgd")
    ratios = lambda name: ", ".join(f"{r['model']}: {r['ratio']:.2f}" for r in rows if r["optimizer"] == name)  # noqa: E731
    passed = bool(total == len(MODELS) and outside <= allowed and bracketed)
    return Comparison(
        prediction=(f"GD divergence lr in [2/λ0, {CATAPULT_FACTOR:g}·2/λ0] (smooth), [2/λ0, {RELU_CATAPULT_FACTOR:g}·2/λ0] "
                    f"(ReLU) for >= {prediction['min_inside']} of {len(MODELS)} models"),
        measurement=(f"GD inside for {inside}/{total} (divergence lr / (2/λ0): {ratios('sgd')}); momentum "
                     f"{counts['momentum'][0]}/{counts['momentum'][1]} within x/÷2 of (2+2β)/λ0 ({ratios('momentum')}); "
                     f"Adam {counts['adam'][0]}/{counts['adam'][1]} at or above 38/λ_P ({ratios('adam')})"),
        metric="GD models whose divergence lr lies outside the forecast window",
        error=float(outside), tolerance=float(allowed), passed=passed,
        details={"every_gd_grid_brackets_divergence": bracketed,
                 "momentum_inside": f"{counts['momentum'][0]}/{counts['momentum'][1]} (stated tolerance x/÷ 2, reported)",
                 "adam_at_or_above": f"{counts['adam'][0]}/{counts['adam'][1]} (stated: lower bound, reported)",
                 "rows": rows})


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = measurement["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=False)
    for ax, name in zip(axes, _OPTIMIZERS):
        chosen = [r for r in rows if r["optimizer"] == name]
        y = np.arange(len(chosen))
        for i, r in enumerate(chosen):
            high = r["high"] if math.isfinite(r["high"]) else r["forecast"] * 1e3
            ax.plot([r["low"], high], [i, i], color="tab:blue", lw=6, alpha=0.4,
                    label="forecast window" if i == 0 else None)
            ax.plot(r["forecast"], i, "|", color="tab:blue", ms=14)
            if math.isfinite(r["divergence_lr"]):
                ax.plot(r["divergence_lr"], i, "o", color="tab:green" if r["inside"] else "tab:red",
                        label="measured divergence lr" if i == 0 else None)
        ax.set_xscale("log")
        ax.set_yticks(y, [r["model"] for r in chosen])
        ax.set_xlabel("learning rate")
        ax.set_title({"sgd": "GD (verdict)", "momentum": "momentum β=0.9 (reported)", "adam": "Adam (reported)"}[name])
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"forecast max-lr: {'PASS' if comparison.passed else 'FAIL'}", fontsize=10)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="forecast-max-lr",
    claim="The divergence learning rate of full-batch GD on MSE lies in the curvature window at initialization, "
          "[2/λ0, 4/λ0] for smooth nets and [2/λ0, 12/λ0] for ReLU nets (catapult), for at least 4 of 5 models.",
    formula="2/λ0 ≤ η_div ≤ 4/λ0 (smooth), 12/λ0 (ReLU);  momentum (2+2β)/λ0;  Adam (2+2β1)/((1−β1)λ_P)",
    source="Cohen et al. 2021 (ICLR), Sec. 2; Lewkowycz et al. 2020, 'The catapult mechanism', Secs. 2-3; "
           "Cohen et al. 2022, 'Adaptive gradient methods at the edge of stability', Sec. 2",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
