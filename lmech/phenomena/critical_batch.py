"""Critical batch size: the steps/examples trade-off of SGD bends at B_crit ~ B_simple, the gradient noise scale.

Claim (McCandlish, Kaplan, Amodei et al. 2018): the optimizer steps S and
examples E = B S needed to reach a fixed loss satisfy (S/S_min - 1)(E/E_min - 1) = 1,
i.e. S(B) = S_min (1 + B_crit/B), and the critical batch B_crit = E_min/S_min is
predicted by the simple gradient noise scale B_simple = tr(Sigma)/|G|^2 measured
along training. Since S = ∫ dS_min (1 + B_noise/B), B_crit is the step-average
of the noise scale over the path to the target (their Section 2.3 / eq. 2.11);
B_simple stands in for B_noise (equal when the Hessian is isotropic).

Experiment: a one-hidden-layer ReLU MLP (width 64, SP) on the digits (cross-entropy),
plain SGD with a constant learning rate, batch sizes 4..128 (fast, 32x) or
4..256 (full, 64x). Each batch size is one ensemble job whose members are a
learning-rate grid (factor sqrt 2, centred on the linear-scaling guess
0.025 B capped at 1.6, the largest stable rate at large B) times seeds;
McCandlish's S_min and E_min assume the best learning rate per batch size, so
steps-to-target of a batch size is the best over its grid of the median over
seeds. The training loss on the full training set is recorded every step;
steps-to-target is the first step at which it is <= TARGET_LOSS.

Noise scale: a separate reference run at the largest fast batch (B = 128, lr 1.6,
its best rate), i.e. close to the S_min path the theory integrates over,
records B_simple (small batch 64, big batch 1024, with replacement) every step;
the measurement is its mean over the steps before that run reaches the target
(a step average, as the theory's integral asks): early-training values, since
the path is short. Smaller reference batches wander in SGD noise, which
inflates B_simple (pilot numbers: bench/NOTES.md, `phenomena.critical_batch`).

Verdict: fit_critical_batch on (B, S) gives B_crit; the error is the factor
max(r, 1/r), r = B_crit / B_simple, which must be <= TOLERANCE; every batch size
must reach the target within its step budget.
"""

import math

import numpy as np

from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.digits import DigitsSpec
from lmech.theory.critical_batch import fit_critical_batch, predicted_critical_batch

__all__ = ["PHENOMENON", "runs", "predict", "measure", "compare", "figure", "TOLERANCE", "TARGET_LOSS"]

TOLERANCE = 3.0  # factor between fitted B_crit and the measured B_simple (McCandlish: "within an order of magnitude")
TARGET_LOSS = 0.2  # training cross-entropy (nats); initial ~2.7
REFERENCE_BATCH, REFERENCE_LR = 128, 1.6
NOISE_EVERY = 1
_NOISE = {"small_batch": 64, "big_batch": 1024}  # smaller small batches left |G|^2 unresolved (bench/NOTES.md)
_TASK = DigitsSpec()
_MODEL = ModelSpec(width=64, depth=1, activation="relu")


def _batches(fast: bool) -> list[int]:
    return [4, 8, 16, 32, 64, 128] if fast else [4, 8, 16, 32, 64, 128, 256]


def _lrs(batch: int, fast: bool) -> list[float]:
    centre = min(0.025 * batch, 1.6)
    half = 2 if fast else 3
    return [centre * 2 ** (j / 2) for j in range(-half, half + 1)]


def _steps(batch: int) -> int:
    """Step budget 12 (1 + 160/B): about twice the steps the best rate needed in pilot runs
    (bench/NOTES.md, `phenomena.critical_batch`)."""
    return int(math.ceil(12 * (1 + 160 / batch)))


def runs(fast: bool) -> list[RunSpec]:
    seeds = range(1 if fast else 3)
    specs = []
    for batch in _batches(fast):
        steps = _steps(batch)
        for lr in _lrs(batch, fast):
            for seed in seeds:
                specs.append(RunSpec(task=_TASK, model=_MODEL, steps=steps, seed=seed,
                                     optimizer=OptimizerSpec(name="sgd", lr=lr, batch_size=batch),
                                     observe={"loss": ObserveSpec(every=1)}))
    noise = {**_NOISE, "num_pairs": 16 if fast else 32}
    for seed in range(1 if fast else 2):
        specs.append(RunSpec(task=_TASK, model=_MODEL, steps=_steps(REFERENCE_BATCH), seed=seed,
                             optimizer=OptimizerSpec(name="sgd", lr=REFERENCE_LR, batch_size=REFERENCE_BATCH),
                             observe={"loss": ObserveSpec(every=1),
                                      "gradient_noise_scale": ObserveSpec(every=NOISE_EVERY, **noise)}))
    return specs


def _is_reference(spec: RunSpec) -> bool:
    return "gradient_noise_scale" in spec.observe


def predict(specs: list[RunSpec]) -> dict:
    """The theory's relation (no measurement): B_crit = factor x B_simple with factor 1
    (`predicted_critical_batch`), S(B) = S_min (1 + B_crit/B); compare applies it to the measured B_simple."""
    return {"relation": "B_crit = B_simple", "factor": 1.0, "target_loss": TARGET_LOSS}


def _steps_to_target(store, spec: RunSpec) -> float:
    steps, values = store.series(spec.id, "loss/train")
    for step, value in zip(steps, values):
        if value <= TARGET_LOSS:
            return float(step)
    return math.inf


def measure(store, specs: list[RunSpec]) -> dict:
    per_batch: dict[int, dict[float, list[float]]] = {}
    b_simple_runs, b_simple_trace = [], []
    for spec in specs:
        if _is_reference(spec):
            reached = _steps_to_target(store, spec)
            steps, values = store.series(spec.id, "gradient_noise_scale/b_simple")
            window = [v for s, v in zip(steps, values) if s < reached]
            b_simple_runs.append(float(np.mean(window)) if window else math.nan)
            b_simple_trace.append((steps, values))
            continue
        lrs = per_batch.setdefault(spec.optimizer.batch_size, {})
        lrs.setdefault(spec.optimizer.lr, []).append(_steps_to_target(store, spec))
    batches = sorted(per_batch)
    best_steps, best_lrs, at_edge = [], [], []
    for batch in batches:
        medians = {lr: float(np.median(v)) for lr, v in per_batch[batch].items()}
        lr = min(medians, key=lambda key: (medians[key], key))
        best_steps.append(medians[lr])
        best_lrs.append(lr)
        at_edge.append(lr in (min(medians), max(medians)))
    return {"batch": np.asarray(batches, dtype=float), "steps": np.asarray(best_steps),
            "best_lr": best_lrs, "lr_at_grid_edge": at_edge,
            "b_simple": float(np.mean(b_simple_runs)), "b_simple_runs": b_simple_runs,
            "b_simple_trace": b_simple_trace}


def compare(prediction: dict, measurement: dict) -> Comparison:
    b, s = measurement["batch"], measurement["steps"]
    predicted = predicted_critical_batch(measurement["b_simple"]) * prediction["factor"]
    reached = bool(np.all(np.isfinite(s)))
    fit, problem = None, ""
    if reached:
        try:
            fit = fit_critical_batch(b, s)
        except ValueError as error:  # NotIdentifiableError is an InputError (a ValueError)
            problem = str(error)
    else:
        problem = f"batch sizes {b[~np.isfinite(s)].astype(int).tolist()} never reached loss {TARGET_LOSS}"
    if fit is None:
        return Comparison(prediction=f"B_crit ≈ B_simple = {predicted:.3g}", measurement=f"no fit: {problem}",
                          metric="factor max(B_crit/B_simple, B_simple/B_crit)", error=math.inf,
                          tolerance=TOLERANCE, passed=False,
                          details={"batch": b.tolist(), "steps": s.tolist(), "problem": problem})
    ratio = fit.b_crit / predicted
    factor = max(ratio, 1 / ratio)
    lo, hi = fit.intervals.get("b_crit", (math.nan, math.nan))
    return Comparison(
        prediction=f"B_crit ≈ B_simple = {predicted:.3g} examples",
        measurement=f"B_crit = {fit.b_crit:.3g} [{lo:.3g}, {hi:.3g}], S_min = {fit.s_min:.3g} steps",
        metric="factor max(B_crit/B_simple, B_simple/B_crit)",
        error=float(factor), tolerance=TOLERANCE, passed=bool(factor <= TOLERANCE),
        details={"batch": b.tolist(), "steps": s.tolist(), "best_lr": [round(v, 4) for v in measurement["best_lr"]],
                 "lr_at_grid_edge": measurement["lr_at_grid_edge"], "b_crit": fit.b_crit,
                 "b_crit_interval": [lo, hi], "s_min": fit.s_min, "e_min": fit.e_min,
                 "b_simple": predicted, "b_simple_runs": measurement["b_simple_runs"],
                 "target_loss": TARGET_LOSS},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    b, s = measurement["batch"], measurement["steps"]
    ok = np.isfinite(s)
    ax.plot(b[ok] * s[ok], s[ok], "o", color="C3", label="best lr per batch size (measured)")
    for bi, si in zip(b[ok], s[ok]):
        ax.annotate(f"B={bi:g}", (bi * si, si), textcoords="offset points", xytext=(4, 3), fontsize=7)
    details = comparison.details
    if "b_crit" in details:
        s_min, b_crit = details["s_min"], details["b_crit"]
        grid = np.geomspace(b.min() / 4, b.max() * 8, 200)
        steps = s_min * (1 + b_crit / grid)
        ax.plot(grid * steps, steps, "-", color="k", lw=1.2,
                label=f"fit S = S_min(1 + B_crit/B), B_crit = {b_crit:.3g}")
        ax.plot([2 * s_min * b_crit], [2 * s_min], "s", color="k", ms=8, label="B = B_crit")
        b_simple = details["b_simple"]
        s_at = s_min * (1 + b_crit / b_simple)
        ax.plot([b_simple * s_at], [s_at], "*", color="C0", ms=13, label=f"B = B_simple = {b_simple:.3g}")
        ax.axhline(s_min, color="grey", ls=":", lw=1)
        ax.axvline(details["e_min"], color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"examples E = B·S to reach train loss {TARGET_LOSS}")
    ax.set_ylabel("optimizer steps S")
    ax.set_title("Critical batch size: steps vs examples (McCandlish et al. 2018)")
    ax.legend(fontsize=7)
    return fig


PHENOMENON = Phenomenon(
    name="critical-batch",
    claim="Steps and examples to a fixed loss trade off as (S/S_min − 1)(E/E_min − 1) = 1; the bend "
          "B_crit = E_min/S_min is predicted by the gradient noise scale B_simple = tr Σ / |G|² (within 3x).",
    formula="S(B) = S_min (1 + B_crit/B),  B_crit ≈ B_simple = tr(Σ)/|G|²",
    source="McCandlish, Kaplan, Amodei et al. 2018, 'An empirical model of large-batch training', eqs. 2.8, 2.11",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
