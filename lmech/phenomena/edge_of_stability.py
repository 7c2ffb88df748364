"""Edge of stability: full-batch GD (and Adam) sharpens until the 2/lr threshold, then hovers there.

Claim: with full-batch gradient descent on the squared loss, the sharpness
(top Hessian eigenvalue) first rises during training (progressive sharpening)
until it reaches the linear-stability threshold 2/lr, then hovers at it while
the training loss keeps decreasing over long horizons but non-monotonically.
For full-batch Adam the same holds for the preconditioned sharpness
lambda_max(P^-1 H), P = diag(sqrt(v_hat) + eps), at (2 + 2 beta1) / ((1 - beta1) lr).

Experiment: a tanh MLP (depth 2, width 64, init_scale 0.5, which starts the
sharpness well below every threshold) on a 180-image subset of the digits
(one-hot targets, MSE), trained by full-batch GD at several learning rates (one
ensemble) and by full-batch Adam (beta1 = 0.9, eps = 1e-8) at one or more rates.
Sharpness and preconditioned sharpness by Lanczos on HVPs on a schedule.

Prediction (theory only): the thresholds 2/lr and 38/lr from lmech.theory.stability.

Verdict per setting: ratio = sharpness / threshold (lr * S / 2 for GD). After the
first measured crossing of the threshold, the median ratio must lie within
1 +- TOLERANCE; the setting must have started below it (ratio <= START_BELOW at
its first measurement: progressive sharpening, not an initial catapult), have
at least MIN_POINTS measurements after the crossing, and its training loss must
be lower at the end than at the crossing (decreasing overall) while rising at
least once by more than SPIKE (non-monotone). The error is the worst |median - 1|.
"""

import math

import numpy as np

from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.digits import DigitsSpec
from lmech.theory.stability import adam_sharpness_threshold, gd_sharpness_threshold

__all__ = ["PHENOMENON", "runs", "predict", "measure", "compare", "figure"]

TOLERANCE = 0.10  # |median(S / threshold) - 1| after the first crossing
START_BELOW = 0.9  # first measured ratio must be below this (sharpening, not catapult)
MIN_POINTS = 5  # sharpness measurements after the crossing needed for a median
SPIKE = 0.01  # a relative loss increase above this counts as non-monotone
BETA1 = 0.9
_LANCZOS = {"rel_tol": 1e-3, "max_iter": 40}  # ~1e-3 relative accuracy is 100x below the tolerance


def _settings(fast: bool) -> tuple[list[float], list[float], int, int]:
    """(GD learning rates, Adam learning rates, GD steps, Adam steps)."""
    if fast:
        return [0.2, 0.3, 0.4], [0.003], 700, 500
    return [0.1, 0.15, 0.2, 0.3, 0.4], [0.001, 0.002, 0.003, 0.006], 2500, 1500


def runs(fast: bool) -> list[RunSpec]:
    gd_lrs, adam_lrs, gd_steps, adam_steps = _settings(fast)
    task = DigitsSpec(test_fraction=0.9, targets="one_hot")
    model = ModelSpec(width=64, depth=2, activation="tanh", init_scale=0.5)
    every = 20 if fast else 10
    specs = []
    for lr in gd_lrs:
        observe = {"sharpness": ObserveSpec(every=every, **_LANCZOS), "loss": ObserveSpec(every=5)}
        specs.append(RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=lr),
                             steps=gd_steps, seed=0, observe=observe))
    for lr in adam_lrs:
        observe = {"preconditioned_sharpness": ObserveSpec(every=every, **_LANCZOS),
                   "loss": ObserveSpec(every=5)}
        specs.append(RunSpec(task=task, model=model,
                             optimizer=OptimizerSpec(name="adam", lr=lr, beta1=BETA1, eps=1e-8),
                             steps=adam_steps, seed=0, observe=observe))
    return specs


def _label(spec: RunSpec) -> str:
    opt = spec.optimizer
    return f"GD lr={opt.lr:g}" if opt.name == "sgd" else f"Adam lr={opt.lr:g}"


def predict(specs: list[RunSpec]) -> dict:
    """Per setting: the stability threshold on (preconditioned) sharpness."""
    settings = []
    for spec in specs:
        opt = spec.optimizer
        if opt.name == "sgd":
            threshold, quantity = gd_sharpness_threshold(opt.lr), "sharpness"
        else:
            threshold, quantity = adam_sharpness_threshold(opt.lr, opt.beta1), "preconditioned_sharpness"
        settings.append({"label": _label(spec), "optimizer": opt.name, "lr": opt.lr,
                         "threshold": threshold, "quantity": quantity})
    return {"settings": settings}


def measure(store, specs: list[RunSpec]) -> dict:
    """Per setting label: sharpness (or preconditioned sharpness) and training-loss series."""
    out = {}
    for spec in specs:
        quantity = "sharpness" if spec.optimizer.name == "sgd" else "preconditioned_sharpness"
        steps, values = store.series(spec.id, f"{quantity}/eigenvalues/0")
        loss_steps, losses = store.series(spec.id, "loss/train")
        out[_label(spec)] = {"steps": np.asarray(steps, dtype=float), "sharpness": np.asarray(values, dtype=float),
                             "loss_steps": np.asarray(loss_steps, dtype=float), "loss": np.asarray(losses, dtype=float)}
    return out


def _judge(threshold: float, series: dict) -> dict:
    """One setting's sub-checks (see the module docstring)."""
    steps, ratio = series["steps"], series["sharpness"] / threshold
    keep = np.isfinite(ratio)
    steps, ratio = steps[keep], ratio[keep]
    crossed = np.nonzero(ratio >= 1.0)[0]
    result = {"first_ratio": float(ratio[0]) if len(ratio) else math.nan, "crossing_step": None,
              "median_ratio": math.nan, "points_after": 0, "loss_decreased": False,
              "loss_non_monotone": False, "max_loss_rise": 0.0}
    if not len(crossed):
        return result | {"error": math.inf, "passed": False}
    first = crossed[0]
    after = ratio[first:]
    step0 = float(steps[first])
    loss_steps, loss = series["loss_steps"], series["loss"]
    tail = loss[loss_steps >= step0]
    rises = tail[1:] / tail[:-1] - 1.0 if len(tail) > 1 else np.zeros(0)
    result.update(crossing_step=step0, median_ratio=float(np.median(after)), points_after=int(len(after)),
                  loss_decreased=bool(len(tail) > 1 and tail[-1] < tail[0]),
                  max_loss_rise=float(rises.max()) if len(rises) else 0.0)
    result["loss_non_monotone"] = result["max_loss_rise"] > SPIKE
    error = abs(result["median_ratio"] - 1.0)
    passed = (error <= TOLERANCE and result["first_ratio"] <= START_BELOW and len(after) >= MIN_POINTS
              and result["loss_decreased"] and result["loss_non_monotone"])
    return result | {"error": error, "passed": bool(passed)}


def compare(prediction: dict, measurement: dict) -> Comparison:
    per_setting = {}
    for setting in prediction["settings"]:
        label = setting["label"]
        if label not in measurement:
            per_setting[label] = {"error": math.inf, "passed": False, "missing": True}
            continue
        per_setting[label] = _judge(setting["threshold"], measurement[label])
    worst = max((r["error"] for r in per_setting.values()), default=math.inf)
    passed = bool(per_setting) and all(r["passed"] for r in per_setting.values())
    medians = ", ".join(f"{label}: {r['median_ratio']:.3f}" if "median_ratio" in r else f"{label}: missing"
                        for label, r in per_setting.items())
    thresholds = ", ".join(f"{s['label']}: {s['threshold']:.4g}" for s in prediction["settings"])
    return Comparison(
        prediction=f"sharpness rises to the threshold and hovers: S/threshold -> 1 ({thresholds})",
        measurement=f"median S/threshold after first crossing: {medians}",
        metric="worst |median(S/threshold) - 1| after the first crossing (plus sharpening and loss checks)",
        error=float(worst), tolerance=TOLERANCE, passed=passed,
        details={label: {k: v for k, v in r.items()} for label, r in per_setting.items()},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = {"sgd": axes[0], "adam": axes[1]}
    for index, setting in enumerate(prediction["settings"]):
        label, color = setting["label"], f"C{index}"
        series = measurement.get(label)
        ax = panels["sgd" if setting["optimizer"] == "sgd" else "adam"]
        ax.axhline(setting["threshold"], color=color, ls="--", lw=1)
        if series is None:
            continue
        ok = comparison.details.get(label, {}).get("passed", False)
        ax.plot(series["steps"], series["sharpness"], "-", color=color,
                label=f"{label} ({'pass' if ok else 'fail'})")
        axes[2].plot(series["loss_steps"], series["loss"], "-", color=color, lw=1, label=label)
    axes[0].set_title("GD: sharpness vs step (dashed: 2/lr)")
    axes[0].set_ylabel("top Hessian eigenvalue")
    axes[1].set_title("Adam: preconditioned sharpness (dashed: 38/lr)")
    axes[1].set_ylabel("lambda_max(P^-1 H)")
    axes[1].set_yscale("log")
    axes[2].set_title("training loss")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return fig


PHENOMENON = Phenomenon(
    name="edge-of-stability",
    claim="Full-batch GD sharpens until sharpness reaches 2/lr, then hovers there while the loss keeps "
          "decreasing non-monotonically; Adam's preconditioned sharpness does the same at 38/lr.",
    formula="λ_max(H) → 2/η (GD);  λ_max(P⁻¹H) → (2+2β₁)/((1−β₁)η) (Adam)",
    source="Cohen, Kaur, Li, Kolter & Talwalkar 2021 (ICLR), Sec. 3; Cohen et al. 2022 (arXiv:2207.14484), Sec. 3",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
