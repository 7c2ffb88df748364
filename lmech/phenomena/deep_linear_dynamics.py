"""Deep linear dynamics: a two-layer linear network learns each target mode on Saxe's sigmoid.

Claim: from small random init, full-batch GD on whitened inputs learns the
target's singular modes one by one, each on the trajectory
u(t) = s e^{2 s lr t} / (e^{2 s lr t} - 1 + s/u0), stronger modes first
(time ~ ln(s/u0) / (2 s lr)).

Prediction (theory only): u0 for a random Gaussian init is the effective
initial strength of the growing direction. With a = W0^T v and b = W1 u, the
small-weight dynamics da/dt = s b, db/dt = s a keep only (a+b)/2, so
u0 = E|a0 + b0|^2 / 4 = H (sigma0^2 + sigma1^2) / 4, where sigma_l is layer l's
init std (derived here; the same argument as Saxe et al. 2014, Sec. 1.1).

Measurement: mode strengths u_r^T (W0 W1)^T v_r on a log schedule, for several
seeds. Error per mode: ||u_measured - u_predicted||_2 / ||u_predicted||_2 over
the schedule (seed-median); pass when the worst mode is within tolerance and
the measured half-times are ordered by strength.
"""

import numpy as np

from lmech.models.mlp import ModelSpec, plan_model
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.deep_linear import DeepLinearSpec
from lmech.theory.deep_linear import mode_strength_trajectory

__all__ = ["PHENOMENON"]

TOLERANCE = 0.10  # worst mode's normalized L2 error


def runs(fast: bool) -> list[RunSpec]:
    seeds = range(4 if fast else 16)
    task = DeepLinearSpec(input_dim=8, output_dim=8, singular_values=(3.0, 2.0, 1.0, 0.5))
    model = ModelSpec(kind="deep_linear", activation="linear", bias=False, depth=1,
                      width=32 if fast else 128, init_scale=0.03)
    return [RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=0.01),
                    steps=2000, seed=seed, observe={"mode_strength": ObserveSpec(every=10)})
            for seed in seeds]


def predict(specs: list[RunSpec]) -> dict:
    spec = specs[0]
    plan = plan_model(spec.model, spec.task.input_dim, spec.task.output_dim, "sgd")
    stds = [layer.init_std * spec.model.init_scale * layer.multiplier for layer in plan.layers]
    u0 = spec.model.width * (stds[0] ** 2 + stds[1] ** 2) / 4
    steps = np.arange(0, spec.steps + 1, 10, dtype=float)
    s = np.asarray(spec.task.singular_values)
    return {"steps": steps, "singular_values": s, "u0": u0,
            "strength": mode_strength_trajectory(s, u0, steps, spec.optimizer.lr)}


def measure(store, specs: list[RunSpec]) -> dict:
    rank = len(specs[0].task.singular_values)
    curves = []
    for spec in specs:
        columns = [store.series(spec.id, f"mode_strength/{r}") for r in range(rank)]
        curves.append(np.stack([np.asarray(values) for _, values in columns], axis=1))
    return {"steps": np.asarray(columns[0][0], dtype=float), "strength": np.stack(curves)}  # (seeds, S, R)


def _half_times(steps: np.ndarray, curves: np.ndarray, s: np.ndarray) -> np.ndarray:
    """First step at which each mode passes half its singular value ((S, R) -> (R,))."""
    out = []
    for r in range(curves.shape[1]):
        above = np.nonzero(curves[:, r] >= 0.5 * s[r])[0]
        out.append(steps[above[0]] if len(above) else np.inf)
    return np.asarray(out)


def compare(prediction: dict, measurement: dict) -> Comparison:
    predicted = prediction["strength"]  # (S, R)
    measured = measurement["strength"]  # (seeds, S, R)
    errors = np.linalg.norm(measured - predicted[None], axis=1) / np.linalg.norm(predicted, axis=0)
    per_mode = np.median(errors, axis=0)
    s = prediction["singular_values"]
    half_measured = _half_times(measurement["steps"], np.median(measured, axis=0), s)
    half_predicted = _half_times(prediction["steps"], predicted, s)
    ordered = bool(np.all(np.diff(half_measured) > 0))
    worst = float(per_mode.max())
    return Comparison(
        prediction=f"half-times {', '.join(f'{t:.0f}' for t in half_predicted)} steps",
        measurement=f"half-times {', '.join(f'{t:.0f}' for t in half_measured)} steps",
        metric="worst mode's normalized L2 error",
        error=worst, tolerance=TOLERANCE, passed=worst <= TOLERANCE and ordered,
        details={"error_per_mode": per_mode.round(4).tolist(), "singular_values": s.tolist(),
                 "ordered_by_strength": ordered, "u0": prediction["u0"]},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(prediction["singular_values"])))
    for r, s in enumerate(prediction["singular_values"]):
        for curve in measurement["strength"][:, :, r]:
            ax.plot(measurement["steps"], curve, color=colors[r], alpha=0.25, lw=1)
        ax.plot(prediction["steps"], prediction["strength"][:, r], "--", color=colors[r], lw=2,
                label=f"s={s:g}: theory (dashed), {len(measurement['strength'])} seeds")
    ax.set_xlabel("GD step")
    ax.set_ylabel("mode strength $u_r^T W v_r$")
    ax.set_title("Deep linear network: Saxe et al. sigmoids")
    ax.legend(fontsize=7)
    return fig


PHENOMENON = Phenomenon(
    name="deep-linear-dynamics",
    claim="A two-layer linear net learns each target mode on a sigmoid, stronger modes first (t ~ ln(s/u0)/(2 s lr)).",
    formula="u(t) = s e^{2 s lr t} / (e^{2 s lr t} - 1 + s/u0),  u0 = H(σ0² + σ1²)/4",
    source="Saxe, McClelland & Ganguli 2014, Sec. 1.1 (eqs. 5-7)",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
