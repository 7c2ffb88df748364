"""forecast-lr-transfer: the optimal learning rate at 4x the largest proxy width, forecast from proxy sweeps.

Claim (Yang et al. 2022, Tensor Programs V, Fig. 1 and Sec. 3): under muP the loss-optimal Adam
learning rate does not depend on width, so the proxies' optimum is the forecast; under SP it
drifts as a power of width, fitted on the proxies and extrapolated (`lmech.forecast.lr_transfer`).

Experiment: a ReLU MLP with two hidden layers on a teacher-student regression (input dimension 4,
small next to every width so that under SP the hidden and output layers, not the input layer, set
lr*; 4096 training examples, label noise 0.1: an irreducible loss, as in practice), Adam with
minibatches of 64 for 100 steps (short: far from converged, so lr* sits near the stability edge
that drifts with width under SP), a half-octave lr grid (2^-12..2^-3) x 4 seeds at proxy widths 8,
16, 32, 64 and the held-out target width 256 (4x the largest proxy), under SP and muP (base width
8). One width + parameterization is one ensemble job (lrs x seeds).

Measurement: the final test loss (mean over the last fifth of training) per member; per width
the optimum of the seed-mean log loss (parabola through the lowest point and its neighbours);
the power-law fit through the proxies' optima (SP: exponent fitted; muP: exponent 0) and its 95%
interval (residual scatter + seed bootstrap); the held-out sweep's optimum at width 256.

Verdict, for both parameterizations: |log2(forecast / held-out optimum)| <= 0.5 (half an octave:
the tolerance) and the held-out loss at the forecast lr (interpolated in log loss on the grid)
within 2% of the held-out sweep's best; under SP the fitted exponent's 95% interval excludes 0
(no trivially flat fit). The reported error is the worse octave error of the two.

Measured (fast, 33.7 CPU-s, FAILS): SP forecast 0.00406 vs held-out 0.00532 (0.39 octave, within
tolerance) but +3.18% loss at the forecast lr (tolerance 2%) and exponent -0.77 whose interval
contains 0; muP 0.35 octave, +0.95% (pass). The SP optima are not a power law of width on this
task: flat from width 8 to 16 (lr* ~ 2^-4), about -1.4 per octave from 16 to 48, then -0.5 per
octave from 64 to 256 (a transition, measured with proxies 8, 12, 16, 24, 32, 48, 64: exponent
-0.92 [resolved], but 0.81 octave and +7.2% off at 256). Tried before: input dimension 8 and 200
steps x 3 seeds (0.86 octave, +2.7%, exponent -0.40 [-1.11, 0.31]); input dimension 2 (the lr
landscape goes flat near the noise floor: 1.87 octaves); 6 seeds at 100 steps (0.06 octave,
exponent unresolved, muP 0.55 octave; 68 CPU-s); least-squares parabolas through 5-9 lowest points.

Scope: one task, widths up to 256 (fast) or 512 (full: proxies 16..128, 8 seeds, 100 steps).
Sources: Yang et al. 2022 (arXiv:2203.03466); Everett et al. 2024 (per-layer exponents under SP).
"""

from __future__ import annotations

import math

import numpy as np

from lmech.errors import NotIdentifiableError
from lmech.forecast.lr_transfer import check_lr_transfer, fit_lr_transfer, forecast_lr_transfer, optimal_log2_lr
from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.teacher_student import TeacherStudentSpec
from lmech.theory.mup import optimal_lr_exponent

__all__ = ["PHENOMENON", "OCTAVE_TOLERANCE", "LOSS_TOLERANCE", "judge"]

OCTAVE_TOLERANCE = 0.5  # |log2 forecast / measured| (issue text: half an octave)
LOSS_TOLERANCE = 0.02  # held-out loss at the forecast lr vs the best held-out loss
PARAMETERIZATIONS = ("sp", "mup")
FINAL_FRACTION = 0.2
NOISE, N_TEST = 0.1, 1024  # label noise (the irreducible loss, as in practice), test examples
INPUT_DIM = 4  # small next to the widths: the hidden and output layers set lr* under SP


def _design(fast: bool) -> dict:
    if fast:
        return {"proxies": [8, 16, 32, 64], "target": 256, "log2_lrs": [x / 2 for x in range(-24, -5)], "seeds": 4,
                "steps": 100, "n_train": 4096, "batch": 64}
    return {"proxies": [16, 32, 64, 128], "target": 512, "log2_lrs": [x / 2 for x in range(-28, 0)],
            "seeds": 8, "steps": 100, "n_train": 4096, "batch": 64}


def runs(fast: bool) -> list[RunSpec]:
    d = _design(fast)
    task = TeacherStudentSpec(n_train=d["n_train"], n_test=N_TEST, input_dim=INPUT_DIM, output_dim=1, teacher_width=64,
                              noise=NOISE)
    observe = {"loss": ObserveSpec(every=d["steps"] // 10, train=False)}
    specs = []
    for parameterization in PARAMETERIZATIONS:
        for width in d["proxies"] + [d["target"]]:
            model = ModelSpec(width=width, depth=2, activation="relu", parameterization=parameterization,
                              base_width=d["proxies"][0])
            for log2_lr in d["log2_lrs"]:
                for seed in range(d["seeds"]):
                    specs.append(RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="adam", lr=2.0**log2_lr,
                                                                                 batch_size=d["batch"]),
                                         steps=d["steps"], seed=seed, observe=observe))
    return specs


def predict(specs: list[RunSpec]) -> dict:
    """Theory only: the width exponent of lr* per parameterization (muP 0, SP -1 for Adam) and the widths."""
    widths = sorted({s.model.width for s in specs})
    return {"proxies": widths[:-1], "target": widths[-1],
            "theory_exponent": {p: optimal_lr_exponent(p) for p in PARAMETERIZATIONS}}


def measure(store, specs: list[RunSpec]) -> dict:
    """Final losses {parameterization: {width: (R, G)}} and the grid log2_lrs (G,)."""
    log2_lrs = sorted({math.log2(s.optimizer.lr) for s in specs})
    seeds = sorted({s.seed for s in specs})
    out: dict = {"log2_lrs": np.asarray(log2_lrs), "losses": {}}
    for spec in specs:
        steps, values = store.series(spec.id, "loss/test")
        tail = [v for s, v in zip(steps, values) if s >= (1 - FINAL_FRACTION) * spec.steps]
        diverged = store.summary(spec.id)["status"] == "diverged" or not tail or not np.all(np.isfinite(tail))
        table = out["losses"].setdefault(spec.model.parameterization, {}).setdefault(
            spec.model.width, np.full((len(seeds), len(log2_lrs)), np.inf))
        table[seeds.index(spec.seed), log2_lrs.index(math.log2(spec.optimizer.lr))] = (
            math.inf if diverged else float(np.mean(tail)))
    return out


def judge(proxies, target, log2_lrs, losses: dict, parameterization: str) -> dict:
    """Fit on the proxies, forecast at the target, score it on the held-out target sweep."""
    try:
        fit = fit_lr_transfer(proxies, log2_lrs, np.stack([losses[w] for w in proxies]), parameterization)
    except NotIdentifiableError as error:
        return {"fit_error": str(error), "error_octaves": math.inf, "excess_loss": math.inf, "exponent_resolved": False}
    forecast = forecast_lr_transfer(fit, target)
    check = check_lr_transfer(forecast, log2_lrs, losses[target])
    low, high = fit.exponent_interval
    return {"forecast": forecast.forecast, "interval": list(forecast.interval), "measured": check["measured"],
            "measured_edge": check["measured_edge"], "error_octaves": check["error_octaves"],
            "excess_loss": check["excess_loss"], "exponent": fit.exponent, "exponent_interval": [low, high],
            "exponent_resolved": bool(low > 0 or high < 0), "proxy_optima": (2.0 ** fit.log2_opt).tolist()}


def compare(prediction: dict, measurement: dict) -> Comparison:
    results = {p: judge(prediction["proxies"], prediction["target"], measurement["log2_lrs"],
                        measurement["losses"][p], p) for p in PARAMETERIZATIONS}
    error = max(r["error_octaves"] for r in results.values())
    within = {p: bool(r["error_octaves"] <= OCTAVE_TOLERANCE) for p, r in results.items()}
    loss_ok = {p: bool(r["excess_loss"] <= LOSS_TOLERANCE) for p, r in results.items()}
    no_edge = all(r.get("measured_edge") is None for r in results.values())
    sp_resolved = bool(results["sp"]["exponent_resolved"])
    passed = all(within.values()) and all(loss_ok.values()) and sp_resolved and no_edge
    fmt = lambda r: (f"{r['forecast']:.3g} [{r['interval'][0]:.3g}, {r['interval'][1]:.3g}]"  # noqa: E731
                     if "forecast" in r else "no fit")
    return Comparison(
        prediction=(f"lr* at width {prediction['target']}: SP {fmt(results['sp'])} "
                    f"(exponent {results['sp'].get('exponent', math.nan):.2f}), muP {fmt(results['mup'])} (flat)"),
        measurement=(f"held-out optimum SP {results['sp'].get('measured', math.nan):.3g}, "
                     f"muP {results['mup'].get('measured', math.nan):.3g}; octave errors "
                     f"{results['sp']['error_octaves']:.2f} / {results['mup']['error_octaves']:.2f}; excess loss "
                     f"{results['sp']['excess_loss']:.2%} / {results['mup']['excess_loss']:.2%}"),
        metric="worst |log2(forecast lr* / held-out lr*)|, octaves",
        error=float(error), tolerance=OCTAVE_TOLERANCE, passed=bool(passed),
        details={"results": results, "loss_tolerance": LOSS_TOLERANCE,
                 "theory_exponent": prediction["theory_exponent"],
                 "sp_within_half_octave": within["sp"], "mup_within_half_octave": within["mup"],
                 "sp_loss_within_2pct": loss_ok["sp"], "mup_loss_within_2pct": loss_ok["mup"],
                 "sp_exponent_interval_excludes_0": sp_resolved, "held_out_optimum_inside_grid": no_edge},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    x = measurement["log2_lrs"]
    widths = prediction["proxies"] + [prediction["target"]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    for ax, p in zip(axes[:2], PARAMETERIZATIONS):
        r = comparison.details["results"][p]
        for w, c in zip(widths, colors):
            curve = np.log(np.where(np.isfinite(measurement["losses"][p][w]), measurement["losses"][p][w], np.nan))
            ax.plot(x, np.nanmean(curve, axis=0), "o-" if w == prediction["target"] else ".-", ms=3, color=c,
                    label=f"H={w}" + (" (held out)" if w == prediction["target"] else ""))
        if "forecast" in r:
            ax.axvline(math.log2(r["forecast"]), color="k", ls="--", lw=1, label="forecast")
            ax.axvspan(math.log2(r["interval"][0]), math.log2(r["interval"][1]), color="k", alpha=0.08)
        ax.set_xlabel("log2 learning rate (Adam)")
        ax.set_ylabel("log final training loss (seed mean)")
        ax.set_title(p.upper())
        ax.legend(fontsize=7)
    ax = axes[2]
    for p, c in zip(PARAMETERIZATIONS, ("C3", "C0")):
        r = comparison.details["results"][p]
        if "forecast" not in r:
            continue
        ax.plot(prediction["proxies"], r["proxy_optima"], "o", color=c, label=f"{p.upper()} proxy optima")
        ax.errorbar([prediction["target"]], [r["forecast"]],
                    yerr=[[r["forecast"] - r["interval"][0]], [r["interval"][1] - r["forecast"]]],
                    fmt="s", color=c, capsize=3, label=f"{p.upper()} forecast (95%)")
        ax.plot([prediction["target"]], [r["measured"]], "x", color=c, ms=9, label=f"{p.upper()} held-out optimum")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("width H")
    ax.set_ylabel("optimal lr")
    ax.set_title(f"forecast vs held out ({'PASS' if comparison.passed else 'FAIL'})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="forecast-lr-transfer",
    claim="From lr sweeps at small widths, the optimal Adam lr at 4x the largest proxy width is forecast within "
          "half an octave (muP: flat; SP: a fitted power law of width whose exponent is resolved from 0).",
    formula="lr*(H) = c·H^b,  b = 0 (muP), b fitted (SP);  |log2(lr*_forecast / lr*_held-out)| ≤ 0.5",
    source="Yang et al. 2022 (Tensor Programs V), Fig. 1, Sec. 3; fit: lmech.forecast.lr_transfer",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
