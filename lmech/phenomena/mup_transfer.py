"""muP transfer: the loss-optimal Adam learning rate is stable across width under muP, drifts under SP.

Claim (Yang & Hu 2021; Yang et al. 2022, Fig. 1 and Sec. 3): under muP every
layer's pre-activations move by Theta(lr) per Adam step at any width, so the
optimal learning rate tuned at a small width transfers; under SP the hidden and
readout layers move by Theta(lr * width), so the optimum shrinks like 1/width.

Experiment: a ReLU MLP with two hidden layers on a teacher-student regression
(input dimension 8, so the width-independent input layer never sets the scale),
full-batch Adam for a fixed number of steps, a log2-spaced learning-rate sweep ×
seeds at widths spanning 16x (fast) or 32x (full), under SP and muP (base width =
the smallest width, where the two coincide). One width + parameterization is one
ensemble job (lrs × seeds).

Measurement: the training loss averaged over the last fifth of training, its log
averaged over seeds (a diverged run counts as +inf), and the optimum per width
from a parabola through the lowest point and its two neighbours in log2 lr
(an optimum on the edge of the sweep is clamped there and flagged). Coordinate
check: the RMS of each layer's pre-activations after COORD_STEP steps at a fixed
learning rate, against width.

Verdict: under muP the optima (after removing the predicted trend, width^0) span
at most a factor 2 (one octave); under SP the optimum falls by at least a factor
4 from the smallest to the largest width. An edge optimum fails muP; under SP it
is accepted only where it can only understate the drift. Coordinate check (sub-check):
the slope of log RMS pre-activation vs log width is within 0.25 of 0 for the input and
hidden layers under muP, and at least half the predicted 1 for the hidden layers under
SP. The output layer is shown, not judged: it is fitted to O(1) targets, and muP's
readout starts near zero by design.
"""

import math

import numpy as np

from lmech.models.mlp import ModelSpec
from lmech.phenomena._lr_transfer import (
    final_loss,
    fit_optima,
    optimal_log2_lr,
    plot_loss_curves,
    plot_optima,
    transfer_checks,
)
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.teacher_student import TeacherStudentSpec
from lmech.theory.mup import optimal_lr_exponent, update_exponents

__all__ = ["PHENOMENON", "optimal_log2_lr", "final_loss"]

PARAMETERIZATIONS = ("sp", "mup")
MUP_TOLERANCE = 1.0  # octaves: muP optima (trend removed) within a factor 2
SP_MIN_DRIFT = 2.0  # octaves: SP optimum falls at least a factor 4 over the width range
COORD_STEP = 10  # coordinate check after this many Adam steps
COORD_LOG2_LR = -5.0  # at this learning rate (near the base-width optimum, the lr one would transfer)
COORD_MUP_MAX = 0.25  # |slope| of log RMS vs log width, input and hidden layers, muP (theory 0)
COORD_SP_MIN = 0.5  # slope of the hidden layers under SP (theory 1; init O(1) part dilutes it)


def _settings(fast: bool) -> dict:
    if fast:
        return {"widths": [16, 32, 64, 128, 256], "log2_lrs": list(range(-11, -2)), "seeds": 2,
                "steps": 100, "n_train": 128}
    return {"widths": [16, 32, 64, 128, 256, 512], "log2_lrs": list(range(-14, -1)), "seeds": 4,
            "steps": 200, "n_train": 512}


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    task = TeacherStudentSpec(n_train=s["n_train"], n_test=64, input_dim=8, output_dim=1, teacher_width=64)
    observe = {"loss": ObserveSpec(every=s["steps"] // 10),
               "activation_scale": ObserveSpec(every=COORD_STEP, max_examples=64)}
    specs = []
    for parameterization in PARAMETERIZATIONS:
        for width in s["widths"]:
            model = ModelSpec(width=width, depth=2, activation="relu", parameterization=parameterization,
                              base_width=s["widths"][0])
            for log2_lr in s["log2_lrs"]:
                for seed in range(s["seeds"]):
                    specs.append(RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="adam", lr=2.0**log2_lr),
                                         steps=s["steps"], seed=seed, observe=observe))
    return specs


def predict(specs: list[RunSpec]) -> dict:
    """Theory only: the width exponent of the optimal lr and of each layer's update, per parameterization."""
    widths = sorted({s.model.width for s in specs})
    return {"widths": np.asarray(widths, dtype=float),
            "lr_exponent": {p: optimal_lr_exponent(p) for p in PARAMETERIZATIONS},
            "coord_exponent": {p: update_exponents(p) for p in PARAMETERIZATIONS}}


def measure(store, specs: list[RunSpec]) -> dict:
    log2_lrs = np.asarray(sorted({math.log2(s.optimizer.lr) for s in specs}))
    widths = sorted({s.model.width for s in specs})
    n_layers = specs[0].model.depth + 1
    losses: dict[tuple, list[float]] = {}
    coords: dict[tuple, list[np.ndarray]] = {}
    for spec in specs:
        key = (spec.model.parameterization, spec.model.width)
        log2_lr = math.log2(spec.optimizer.lr)
        diverged = store.summary(spec.id)["status"] == "diverged"
        steps, values = store.series(spec.id, "loss/train")
        loss = math.inf if diverged else final_loss(steps, values, spec.steps)
        losses.setdefault(key + (log2_lr,), []).append(math.log(loss) if loss > 0 else -math.inf)
        if abs(log2_lr - COORD_LOG2_LR) < 1e-9:
            metrics = store.metrics(spec.id)
            at = {n: v for s, n, v in zip(metrics["step"], metrics["name"], metrics["value"]) if s == COORD_STEP}
            coords.setdefault(key, []).append(
                np.asarray([at.get(f"activation_scale/{layer}", math.nan) for layer in range(n_layers)]))
    out = {"widths": np.asarray(widths, dtype=float), "log2_lrs": log2_lrs}
    for p in PARAMETERIZATIONS:
        curves = np.asarray([[np.mean(losses[(p, w, x)]) for x in log2_lrs] for w in widths])  # (W, G)
        log2_opt, edges = fit_optima(log2_lrs, curves)
        out[p] = {"log_loss": curves, "log2_opt": log2_opt, "edge": edges,
                  "coord": np.asarray([np.mean(coords[(p, w)], axis=0) for w in widths])}  # (W, L)
    return out


def _slope(widths: np.ndarray, values: np.ndarray) -> float:
    return float(np.polyfit(np.log2(widths), np.log2(values), 1)[0])


def compare(prediction: dict, measurement: dict) -> Comparison:
    widths = measurement["widths"]
    octaves = np.log2(widths / widths[0])
    mup, sp = measurement["mup"], measurement["sp"]
    checks = transfer_checks(widths, mup, prediction["lr_exponent"]["mup"], sp, prediction["lr_exponent"]["sp"])
    spread, drift, predicted_drift = checks["spread"], checks["drift"], checks["predicted_drift"]
    # an SP optimum clamped at an edge can only understate the drift when it sits at the extreme
    # the drift points to: the upper edge at the smallest width, the lower edge at the largest.
    mup_edges, sp_bad_edges = checks["flat_edges"], checks["bad_edges"]
    coord_slopes = {p: [round(_slope(widths, measurement[p]["coord"][:, layer]), 3)
                        for layer in range(measurement[p]["coord"].shape[1])] for p in PARAMETERIZATIONS}
    n_layers = len(coord_slopes["sp"])
    roles = ["input"] + ["hidden"] * (n_layers - 2) + ["output"]
    mup_flat = all(abs(coord_slopes["mup"][l] - prediction["coord_exponent"]["mup"][roles[l]]) <= COORD_MUP_MAX
                   for l in range(n_layers - 1))
    sp_grows = all(coord_slopes["sp"][l] >= COORD_SP_MIN * prediction["coord_exponent"]["sp"][roles[l]]
                   for l in range(n_layers - 1) if roles[l] == "hidden")
    passed = (spread <= MUP_TOLERANCE and drift >= SP_MIN_DRIFT and not mup_edges and not sp_bad_edges
              and mup_flat and sp_grows)
    ratio = lambda o: 2.0 ** o  # noqa: E731
    return Comparison(
        prediction=(f"muP optimum flat (x{ratio(-prediction['lr_exponent']['mup'] * octaves[-1]):.3g}); "
                    f"SP falls x{ratio(predicted_drift):.3g} over {widths[0]:g}..{widths[-1]:g}"),
        measurement=(f"muP spread x{ratio(spread):.2f}; SP falls x{ratio(drift):.2f}"
                     + (f"; muP edge optima at {mup_edges}" if mup_edges else "")
                     + (f"; SP optima at the wrong edge at {sp_bad_edges}" if sp_bad_edges else "")
                     + f"; coord. check hidden slope SP {coord_slopes['sp'][-2]:.2f}, muP {coord_slopes['mup'][-2]:.2f}"),
        metric="muP spread of log2 optimal lr (trend removed), octaves; SP drift >= 2 octaves",
        error=spread, tolerance=MUP_TOLERANCE, passed=bool(passed),
        details={"widths": widths.tolist(),
                 "mup_log2_opt": mup["log2_opt"].round(3).tolist(), "sp_log2_opt": sp["log2_opt"].round(3).tolist(),
                 "mup_edges": mup_edges, "sp_edges": [str(e) for e in sp["edge"]], "sp_bad_edges": sp_bad_edges,
                 "sp_drift_octaves": round(drift, 3), "sp_min_drift_octaves": SP_MIN_DRIFT,
                 "sp_predicted_drift_octaves": predicted_drift,
                 "coord_step": COORD_STEP, "coord_log2_lr": COORD_LOG2_LR,
                 "coord_slopes": coord_slopes, "coord_predicted": prediction["coord_exponent"],
                 "coord_mup_flat": mup_flat, "coord_sp_grows": sp_grows},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    widths, x = measurement["widths"], measurement["log2_lrs"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, p in zip(axes[0], PARAMETERIZATIONS):
        plot_loss_curves(ax, widths, x, measurement[p], optimizer="Adam", title=p.upper())
    plot_optima(axes[1, 0], widths, [(p.upper(), measurement[p]["log2_opt"], prediction["lr_exponent"][p], c)
                                     for p, c in zip(PARAMETERIZATIONS, ("C3", "C0"))],
                band_at=measurement["mup"]["log2_opt"][0], passed=comparison.passed)
    ax = axes[1, 1]
    n_layers = measurement["sp"]["coord"].shape[1]
    layer_colors = plt.cm.plasma(np.linspace(0, 0.8, n_layers))
    roles = ["input"] + ["hidden"] * (n_layers - 2) + ["output"]
    for layer in range(n_layers):
        for p, style in zip(PARAMETERIZATIONS, ("-", "--")):
            values = measurement[p]["coord"][:, layer]
            ax.plot(widths, values, style, marker="o", ms=3, color=layer_colors[layer],
                    label=f"{p.upper()} layer {layer}")
            slope = prediction["coord_exponent"][p][roles[layer]]
            ax.plot(widths, values[0] * (widths / widths[0]) ** slope, ":", color=layer_colors[layer], lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("width H")
    ax.set_ylabel(f"RMS pre-activation after {COORD_STEP} steps (lr=2^{COORD_LOG2_LR:g})")
    ax.set_title("coordinate check (dotted: theory slope)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="mup-transfer",
    claim="The loss-optimal Adam learning rate is stable across width under muP and falls like 1/width under SP.",
    formula="lr*(H) ∝ H^0 (muP),  lr*(H) ∝ H^-1 (SP);  Δz_l ∝ lr·H^{f+p+c}",
    source="Yang & Hu 2021 (Tensor Programs IV); Yang et al. 2022 (Tensor Programs V), Fig. 1, Sec. 3, Table 3",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
