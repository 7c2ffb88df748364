"""The catapult: full-batch GD on a wide network has three regimes, split at lr = 2/λ0 and lr = 4/λ0.

Claim (Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020, "The large learning
rate phase of deep learning: the catapult mechanism", Sec. 2 and Fig. 1):
with the squared loss and full-batch gradient descent at learning rate lr, and λ0
the top eigenvalue of the loss Hessian at initialization (= of the NTK / N for a
wide network):
- lazy phase, lr < 2/λ0: the loss decreases monotonically and the curvature
  barely moves (the linearized model's regime);
- catapult phase, 2/λ0 < lr < lr_max: the loss first grows (along the top
  mode), the curvature then falls until it is below 2/lr, and training converges;
- divergent phase, lr > lr_max: the loss blows up.
The upper edge used here is lr_max = 4/λ0 (UPPER_EDGE = 4), the paper's exact
large-width result for its two-layer linear "uv model" (Sec. 2); for ReLU
networks the paper's experiments (Sec. 3) find a larger edge (about 12/λ0), so
the network here is the one the constant is derived for.

Experiment: a two-layer linear network f(x) = v^T U x / sqrt(H D) in NTK
parameterization (no biases, unit-variance weights), width H = 2048 (fast) or
4096 (full), on a tanh teacher-student task (D = 16 inputs, N = 64 training
points, one output), loss "mse" (torch mean over elements; any constant factor in
the loss rescales λ0 and the lr grid alike), full-batch GD for 300 (fast) or 600
(full) steps. The learning rates are a grid of multiples c of 1/λ0_theory, where
λ0_theory = (2/N)(2/D) λ_max(X X^T) is the infinite-width Hessian top eigenvalue
at init (the NTK of this network is Θ(x, x') = 2 x.x'/D, the Hessian's
Gauss-Newton part is (2/N) J^T J); the grid is denser near 2 and 4 and reaches
25% past both. All rates (and, in full mode, three seeds) are ensemble scalars:
one ensemble job. Observed: the training loss every step; sharpness (Lanczos) at
step 0 and at the end.

Measurement: λ0 = the measured step-0 sharpness of each run (the claim's λ0);
c = lr λ0. Each run is classified: divergent (NaN/inf, or final loss >= initial);
lazy (no step raises the loss by more than RISE_TOL relative and the final
sharpness is within SHARPNESS_MOVE of λ0); catapult (the loss rises above
(1 + SPIKE) times its initial value, ends below CONVERGED times it, and the final
sharpness is below 2/lr); anything else is unclassified. Per seed, the measured
lower boundary is the geometric mean of the largest lazy c and the smallest
catapult c, the upper one likewise between catapult and divergent.

Verdict: error = the largest |measured boundary / predicted - 1| over both
boundaries and every seed, tolerance 20%; and the sub-checks: every run
classified, regimes ordered in c (all lazy < all catapult < all divergent, each
non-empty), and the measured λ0 within 5% of λ0_theory (the width is large
enough for the infinite-width kernel).

Scope: within a few percent above 2/λ0 the catapult is critically slow (the top
mode grows by lr λ0 - 1 per step), so no grid point lies within 5% of the lower
edge. The constant 4 is the two-layer linear network's; nonlinear networks
(ReLU: ~12/λ0 in the paper) and SGD are not tested. The grid resolution bounds
how finely a boundary can be placed (<= 8% around each predicted edge), below the
20% tolerance; a boundary off by more than the tolerance moves past grid points
and fails.

Cost: fast, 14 members x 300 full-batch steps (N = 64) in one ensemble job plus
two Lanczos runs per member, about 19 CPU-seconds on one thread.
"""

import math

import numpy as np
import torch

from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.teacher_student import TeacherStudentSpec

__all__ = ["PHENOMENON", "runs", "predict", "measure", "compare", "figure", "classify", "linear_ntk_sharpness",
           "LOWER_EDGE", "UPPER_EDGE"]

LOWER_EDGE = 2.0  # lr λ0 at the lazy / catapult boundary (linear stability of GD)
UPPER_EDGE = 4.0  # lr λ0 at the catapult / divergent boundary (uv model, Lewkowycz et al. 2020, Sec. 2)
TOLERANCE = 0.20  # relative error of each measured boundary
RISE_TOL = 1e-3  # a relative loss rise above this breaks monotonicity (float32 noise at the floor is ~1e-6)
SHARPNESS_MOVE = 0.05  # lazy: |S_end / λ0 - 1| at most this
SPIKE = 0.10  # catapult: the loss exceeds (1 + SPIKE) L0 at some step
CONVERGED = 0.10  # catapult: final loss at most this fraction of L0
LAMBDA_AGREEMENT = 0.05  # |λ0 measured / λ0 theory - 1| at most this
_GRID_FAST = (1.0, 1.5, 1.7, 1.85, 2.15, 2.35, 2.6, 3.0, 3.4, 3.7, 3.85, 4.15, 4.4, 5.0)
# no point within 5% of the lower edge: there the top mode grows by |1 - c| ~ 1.05 a step, too slowly to
# catapult and converge within the budget (a full run at c = 2.06 ended unclassified)
_GRID_FULL = (1.0, 1.4, 1.6, 1.75, 1.85, 2.15, 2.3, 2.5, 2.8, 3.2, 3.5, 3.7, 3.8, 3.9, 4.1, 4.2, 4.4, 5.0)
_LANCZOS = {"rel_tol": 1e-4, "max_iter": 60}


def _settings(fast: bool) -> dict:
    if fast:
        return {"width": 2048, "steps": 300, "seeds": [0], "grid": _GRID_FAST}
    return {"width": 4096, "steps": 600, "seeds": [0, 1, 2], "grid": _GRID_FULL}


def _task() -> TeacherStudentSpec:
    return TeacherStudentSpec(n_train=64, n_test=256, input_dim=16, output_dim=1)


def linear_ntk_sharpness(x: torch.Tensor) -> float:
    """Infinite-width top Hessian eigenvalue at init of f(x) = v^T U x / sqrt(H D) under the mean squared error.

    x: (N, D) training inputs. Θ(x, x') = 2 x.x' / D at H -> infinity (both layers' contributions), and the
    Hessian at init is its Gauss-Newton part (2/N) J^T J (the residual term is O(H^-1/2)), whose top
    eigenvalue is (2/N) λ_max(Θ) = (4 / (N D)) λ_max(X X^T). Cost: one (N, N) eigendecomposition.
    Source: Jacot et al. 2018 (NTK); Lewkowycz et al. 2020, Sec. 2 (λ of the uv model).
    """
    x = x.double()
    n, d = x.shape
    return float(4.0 / (n * d) * torch.linalg.eigvalsh(x @ x.T)[-1])


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    task = _task()
    lam = linear_ntk_sharpness(make_task(task, 0).x_train)  # data_seed 0: the same data for every run
    model = ModelSpec(width=s["width"], depth=1, activation="linear", bias=False, parameterization="ntk")
    observe = {"loss": ObserveSpec(every=1), "sharpness": ObserveSpec(every=s["steps"], **_LANCZOS)}
    return [RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=c / lam), steps=s["steps"],
                    seed=seed, loss="mse", observe=observe)
            for seed in s["seeds"] for c in s["grid"]]


def predict(specs: list[RunSpec]) -> dict:
    """The boundaries in units of lr λ0 (2 and 4) and the infinite-width λ0 of the task's data."""
    first = specs[0]
    lam = linear_ntk_sharpness(make_task(first.task, first.data_seed if first.data_seed is not None else 0).x_train)
    return {"lower": LOWER_EDGE, "upper": UPPER_EDGE, "lambda0_theory": lam}


def classify(losses: list[float], diverged: bool, lr: float, s0: float, s_end: float) -> str:
    """One run's regime: "lazy", "catapult", "divergent" or "other" (see the module docstring).

    losses: (S + 1,) training loss at steps 0..S; s0, s_end: sharpness at step 0 and at the end.
    """
    loss = np.asarray(losses, dtype=float)
    if diverged or not np.all(np.isfinite(loss)) or loss[-1] >= loss[0]:
        return "divergent"
    rises = loss[1:] / loss[:-1] - 1.0
    if rises.max(initial=0.0) <= RISE_TOL and abs(s_end / s0 - 1.0) <= SHARPNESS_MOVE:
        return "lazy"
    if loss.max() >= (1 + SPIKE) * loss[0] and loss[-1] <= CONVERGED * loss[0] and s_end < 2.0 / lr:
        return "catapult"
    return "other"


def measure(store, specs: list[RunSpec]) -> dict:
    """Per seed: for each run, lr, measured λ0, c = lr λ0, final sharpness, loss curve and regime."""
    out: dict[int, list[dict]] = {}
    for spec in specs:
        _, loss = store.series(spec.id, "loss/train")
        s_steps, sharp = store.series(spec.id, "sharpness/eigenvalues/0")
        diverged = store.summary(spec.id).get("status") == "diverged"
        s0 = sharp[0] if s_steps and s_steps[0] == 0 else math.nan
        s_end = sharp[-1] if len(sharp) > 1 and s_steps[-1] == spec.steps else math.nan
        lr = spec.optimizer.lr
        out.setdefault(spec.seed, []).append({
            "lr": lr, "lambda0": s0, "c": lr * s0, "sharpness_end": s_end, "loss": loss,
            "regime": classify(loss, diverged, lr, s0, s_end)})
    return {seed: sorted(rows, key=lambda r: r["c"]) for seed, rows in sorted(out.items())}


def _boundaries(rows: list[dict]) -> dict:
    """Measured boundaries of one seed and whether its regimes are ordered lazy < catapult < divergent."""
    c = {name: [r["c"] for r in rows if r["regime"] == name] for name in ("lazy", "catapult", "divergent", "other")}
    complete = all(c[name] for name in ("lazy", "catapult", "divergent"))
    ordered = complete and max(c["lazy"]) < min(c["catapult"]) and max(c["catapult"]) < min(c["divergent"])
    lower = math.sqrt(max(c["lazy"]) * min(c["catapult"])) if complete else math.nan
    upper = math.sqrt(max(c["catapult"]) * min(c["divergent"])) if complete else math.nan
    return {"lower": lower, "upper": upper, "ordered": bool(ordered), "unclassified": len(c["other"]),
            "regimes": {f"{r['c']:.3f}": r["regime"] for r in rows}}


def compare(prediction: dict, measurement: dict) -> Comparison:
    per_seed, errors, lambda_errors = {}, [], []
    for seed, rows in measurement.items():
        b = _boundaries(rows)
        e_low = abs(b["lower"] / prediction["lower"] - 1.0) if math.isfinite(b["lower"]) else math.inf
        e_up = abs(b["upper"] / prediction["upper"] - 1.0) if math.isfinite(b["upper"]) else math.inf
        lam = float(np.median([r["lambda0"] for r in rows]))
        lambda_errors.append(abs(lam / prediction["lambda0_theory"] - 1.0) if math.isfinite(lam) else math.inf)
        errors += [e_low, e_up]
        per_seed[str(seed)] = b | {"lambda0": lam, "lower_error": e_low, "upper_error": e_up}
    error = max(errors, default=math.inf)
    ordered = bool(per_seed) and all(b["ordered"] for b in per_seed.values())
    all_classified = all(b["unclassified"] == 0 for b in per_seed.values())
    lambda_ok = bool(lambda_errors) and max(lambda_errors) <= LAMBDA_AGREEMENT
    passed = bool(error <= TOLERANCE and ordered and all_classified and lambda_ok)
    found = "; ".join(f"seed {s}: lower {b['lower']:.3g}, upper {b['upper']:.3g} (λ0 {b['lambda0']:.4g})"
                      for s, b in per_seed.items())
    return Comparison(
        prediction=(f"lazy below lr λ0 = {prediction['lower']:g}, catapult up to {prediction['upper']:g} "
                    f"(uv-model edge 4/λ0), divergent above; λ0 theory {prediction['lambda0_theory']:.4g}"),
        measurement=f"measured boundaries in lr λ0: {found}",
        metric="largest relative error of a measured boundary (lower vs 2, upper vs 4)",
        error=float(error), tolerance=TOLERANCE, passed=passed,
        details={"per_seed": per_seed, "lambda0_relative_error": max(lambda_errors, default=math.inf),
                 "regimes_ordered": ordered, "every_run_classified": all_classified,
                 "lambda0_matches_theory": bool(lambda_ok), "upper_edge_constant": UPPER_EDGE},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    seed, rows = next(iter(measurement.items()))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
    for color, r in zip(colors, rows):
        loss = np.asarray(r["loss"], dtype=float)
        axes[0].plot(np.arange(len(loss)), loss, color=color, lw=1, label=f"c={r['c']:.2f} ({r['regime']})")
    axes[0].set_yscale("log")
    axes[0].set_xscale("symlog", linthresh=10)
    axes[0].set_xlim(left=0)  # steps are >= 0: no negative symlog tick
    finite = [v for r in rows for v in r["loss"] if math.isfinite(v)]
    if finite:
        axes[0].set_ylim(0.5 * min(finite), 1e3 * rows[0]["loss"][0])
    axes[0].set_xlabel("GD step (divergent curves leave the top)")
    axes[0].set_ylabel(f"training loss (mse), seed {seed}")
    axes[0].set_title("loss curves by c = lr λ0")
    axes[0].legend(fontsize=6, ncol=2)
    ax = axes[1]
    marker = {"lazy": "o", "catapult": "*", "divergent": "x", "other": "s"}
    for r in rows:
        y = r["sharpness_end"] * r["lr"] / 2 if math.isfinite(r["sharpness_end"]) else 1.6
        ax.plot([r["c"]], [y], marker[r["regime"]], color="C0" if r["regime"] != "other" else "C3", ms=8)
    for edge, name in ((prediction["lower"], "predicted 2/λ0"), (prediction["upper"], "predicted 4/λ0")):
        ax.axvline(edge, color="C3", ls="--", lw=1, label=name)
    b = comparison.details["per_seed"].get(str(seed), {})
    for key in ("lower", "upper"):
        if math.isfinite(b.get(key, math.nan)):
            ax.axvline(b[key], color="C2", ls=":", lw=1.5, label=f"measured {key}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("c = lr λ0")
    ax.set_ylabel("final sharpness × lr / 2 (divergent drawn at 1.6)")
    ax.set_title(f"o lazy, * catapult, x divergent ({'PASS' if comparison.passed else 'FAIL'})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="catapult",
    claim="Full-batch GD on a wide network with the squared loss is lazy below lr = 2/λ0, catapults (loss spike, "
          "then sharpness below 2/lr and convergence) between 2/λ0 and 4/λ0, and diverges above.",
    formula="η < 2/λ₀: lazy;  2/λ₀ < η < 4/λ₀: catapult (λ_end < 2/η);  η > 4/λ₀: divergent",
    source=("Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari 2020 (arXiv:2003.02218), Sec. 2 "
            "(uv model: η_max = 4/λ₀) and Fig. 1"),
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
