"""muP transfer on a transformer language model: the Adam-optimal learning rate is stable across
width under muP and falls like 1/width under SP.

Claim (Yang et al. 2022, Tensor Programs V, Fig. 1 and Sec. 3): Adam's update is Theta(lr) per
entry whatever the width, and aligned with the incoming activations, so a hidden matrix's
update moves its outputs by Theta(lr * width) under SP; muP divides the hidden matrices' Adam lr
by m = width / base_width, the readout's output by m and the attention logits by d instead of
sqrt(d), so every layer moves by Theta(lr) and the optimum tuned at the base width transfers.

Experiment: a pre-LN decoder-only transformer (1 block fast, 2 full; 2 heads, so the head size
grows with width; MLP ratio 1) trained as a next-token model on a random order-1 Markov chain
over 16 tokens (Dirichlet 0.5 rows, sequences of 16), minibatch Adam (8 sequences a step, 150
steps fast), a log2-spaced lr sweep at widths 16..128 (8x, fast) or 16..256 (16x, full), under
SP and muP (`TransformerSpec(parameterization="mup", base_width=16)`: muP equals SP at width 16
apart from the zero-initialised query and readout). One (parameterization, width) is one
ensemble job over lrs x seeds. Coordinate check: separate runs of COORD_STEP Adam steps at lr
2^COORD_LOG2_LR (two seeds), observing `activation_scale` (forward hooks on every module).

Measurement: per run, the training loss averaged over the last fifth of training; its log
averaged over seeds (diverged: +inf); the optimum per width from a parabola through the lowest
point and its neighbours in log2 lr (`_lr_transfer`). Coordinate check: the RMS after
COORD_STEP steps of each hidden layer's output that enters the residual stream (every block's
attention.out and mlp.down), of the residual stream after each block, and of the logits.

Verdict: under muP the optima (trend width^0 removed) span at most one octave (a factor 2)
with no optimum on a sweep edge; under SP the optimum falls by at least two octaves (a factor
4) from the smallest to the largest width, an edge optimum accepted only where it can only
understate that fall. Sub-checks (coordinate check): the log-log slope of each hidden output's
RMS vs width is within COORD_MUP_MAX of 0 under muP and at least COORD_SP_MIN under SP (theory:
1; the O(1) initial part dilutes it). The residual stream and the logits are shown, not judged.

Scope: tiny widths (16..256) and short training on a language whose loss floor (its entropy
rate) the widest models approach; the width-1/H drift of SP is the asymptotic statement, and
here the 8x range gives about 3 octaves. The embedding (fan_in 1) is width-independent in both
parameterizations.

Sources: Yang et al. 2022 (arXiv 2203.03466), Fig. 1 (transformer lr sweeps under SP vs muP),
Sec. 3 and Fig. 5 (coordinate check), Table 3 / Table 8 (Adam muP); the `mup` package's
coordinate check.
"""

import math

import numpy as np

from lmech.models.transformer import TransformerSpec
from lmech.phenomena._lr_transfer import fit_optima, log_loss_curves, plot_loss_curves, plot_optima, transfer_checks
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.markov_language import MarkovLanguageSpec
from lmech.theory.mup import optimal_lr_exponent, update_exponents

__all__ = ["PHENOMENON", "coordinate_fields", "coordinate_slopes"]

PARAMETERIZATIONS = ("sp", "mup")
MUP_TOLERANCE = 1.0  # octaves: muP optima (trend removed) within a factor 2
SP_MIN_DRIFT = 2.0  # octaves: SP optimum falls at least a factor 4 over the width range
COORD_STEP = 10  # coordinate check after this many Adam steps
COORD_LOG2_LR = -5.0  # at this lr: twice the base-width optimum (~2^-6), where SP's growth shows within 10 steps
COORD_SEEDS = 2
COORD_MUP_MAX = 0.25  # |slope| of log RMS vs log width, hidden outputs, muP (theory 0)
COORD_SP_MIN = 0.5  # slope of the hidden outputs under SP (theory 1)
HEADS = 2
SEQ_LEN = 16
BATCH = 8


def _settings(fast: bool) -> dict:
    if fast:
        return {"widths": [16, 32, 64, 128], "log2_lrs": list(range(-10, -3)), "seeds": 1, "steps": 150,
                "depth": 1, "n_train": 256}
    return {"widths": [16, 32, 64, 128, 256], "log2_lrs": list(range(-12, -2)), "seeds": 3, "steps": 400,
            "depth": 2, "n_train": 2048}


def _task(s: dict) -> MarkovLanguageSpec:
    return MarkovLanguageSpec(vocab_size=16, order=1, concentration=0.5, seq_len=SEQ_LEN, n_train=s["n_train"],
                              n_test=64)


def _model(s: dict, parameterization: str, width: int) -> TransformerSpec:
    return TransformerSpec(width=width, heads=HEADS, depth=s["depth"], context=SEQ_LEN, mlp_ratio=1.0,
                           parameterization=parameterization, base_width=s["widths"][0])


def _is_coordinate_run(spec: RunSpec) -> bool:
    return "activation_scale" in spec.observe


def runs(fast: bool) -> list[RunSpec]:
    """The sweep (loss every tenth of training) and the coordinate-check runs, per parameterization and width."""
    s = _settings(fast)
    task = _task(s)
    sweep_observe = {"loss": ObserveSpec(every=s["steps"] // 10)}
    coord_observe = {"activation_scale": ObserveSpec(every=COORD_STEP, max_examples=16)}
    specs = []
    for parameterization in PARAMETERIZATIONS:
        for width in s["widths"]:
            model = _model(s, parameterization, width)
            for log2_lr in s["log2_lrs"]:
                for seed in range(s["seeds"]):
                    specs.append(RunSpec(task=task, model=model, steps=s["steps"], seed=seed, observe=sweep_observe,
                                         optimizer=OptimizerSpec(name="adam", lr=2.0**log2_lr, batch_size=BATCH)))
            for seed in range(COORD_SEEDS):
                specs.append(RunSpec(task=task, model=model, steps=COORD_STEP, seed=seed, observe=coord_observe,
                                     optimizer=OptimizerSpec(name="adam", lr=2.0**COORD_LOG2_LR, batch_size=BATCH)))
    return specs


def predict(specs: list[RunSpec]) -> dict:
    """Theory only: the width exponent of the optimal lr and of each layer's update, per parameterization."""
    widths = sorted({s.model.width for s in specs})
    return {"widths": np.asarray(widths, dtype=float),
            "lr_exponent": {p: optimal_lr_exponent(p) for p in PARAMETERIZATIONS},
            "coord_exponent": {p: update_exponents(p) for p in PARAMETERIZATIONS}}


def coordinate_fields(depth: int) -> dict[str, str]:
    """{activation_scale field: role} of the coordinate check for a transformer of `depth` blocks.

    "hidden": the hidden matrices whose outputs enter the residual stream (judged);
    "stream": the residual stream after each block; "output": the logits (both shown only).
    """
    fields = {}
    for block in range(depth):
        fields[f"blocks.{block}.attention.out"] = "hidden"
        fields[f"blocks.{block}.mlp.down"] = "hidden"  # this experiment's blocks all have MLPs
        fields[f"blocks.{block}"] = "stream"
    fields["output"] = "output"
    return fields


def _coordinates(store, specs: list[RunSpec], widths: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """{parameterization: {field: (W,) seed-mean RMS after COORD_STEP steps}} of the coordinate runs."""
    fields = coordinate_fields(specs[0].model.depth)
    values: dict[tuple, list[float]] = {}
    for spec in specs:
        metrics = store.metrics(spec.id)
        at = {n: v for s, n, v in zip(metrics["step"], metrics["name"], metrics["value"]) if s == COORD_STEP}
        for field in fields:
            values.setdefault((spec.model.parameterization, spec.model.width, field), []).append(
                at.get(f"activation_scale/{field}", math.nan))
    return {p: {f: np.asarray([np.mean(values[(p, int(w), f)]) for w in widths]) for f in fields}
            for p in PARAMETERIZATIONS}


def measure(store, specs: list[RunSpec]) -> dict:
    sweep = [s for s in specs if not _is_coordinate_run(s)]
    widths, log2_lrs, curves = log_loss_curves(store, sweep, lambda s: s.model.parameterization)
    coords = _coordinates(store, [s for s in specs if _is_coordinate_run(s)], widths)
    out = {"widths": widths, "log2_lrs": log2_lrs, "coord_roles": coordinate_fields(specs[0].model.depth)}
    for p in PARAMETERIZATIONS:
        log2_opt, edges = fit_optima(log2_lrs, curves[p])
        out[p] = {"log_loss": curves[p], "log2_opt": log2_opt, "edge": edges, "coord": coords[p]}
    return out


def coordinate_slopes(widths: np.ndarray, coord: dict[str, np.ndarray]) -> dict[str, float]:
    """{field: slope of log2 RMS vs log2 width} (least squares; NaN if any value is not positive)."""
    out = {}
    for field, values in coord.items():
        values = np.asarray(values, dtype=float)
        ok = bool(np.all(np.isfinite(values) & (values > 0)))
        out[field] = round(float(np.polyfit(np.log2(widths), np.log2(values), 1)[0]), 3) if ok else math.nan
    return out


def compare(prediction: dict, measurement: dict) -> Comparison:
    widths = measurement["widths"]
    mup, sp = measurement["mup"], measurement["sp"]
    exponent = prediction["lr_exponent"]
    checks = transfer_checks(widths, mup, exponent["mup"], sp, exponent["sp"])
    spread, sp_drift, predicted_drift = checks["spread"], checks["drift"], checks["predicted_drift"]
    mup_edges, sp_bad_edges = checks["flat_edges"], checks["bad_edges"]
    hidden = [f for f, role in measurement["coord_roles"].items() if role == "hidden"]
    slopes = {p: coordinate_slopes(widths, measurement[p]["coord"]) for p in PARAMETERIZATIONS}
    theory = prediction["coord_exponent"]
    mup_flat = all(abs(slopes["mup"][f] - theory["mup"]["hidden"]) <= COORD_MUP_MAX for f in hidden)
    sp_grows = all(slopes["sp"][f] >= COORD_SP_MIN * theory["sp"]["hidden"] for f in hidden)
    passed = (spread <= MUP_TOLERANCE and sp_drift >= SP_MIN_DRIFT and not mup_edges and not sp_bad_edges
              and mup_flat and sp_grows)
    hidden_mean = {p: float(np.mean([slopes[p][f] for f in hidden])) for p in PARAMETERIZATIONS}
    return Comparison(
        prediction=(f"muP optimum flat; SP falls x{2.0 ** predicted_drift:.3g} over {widths[0]:g}..{widths[-1]:g}; "
                    f"hidden coordinates ∝ H^{theory['sp']['hidden']:g} (SP), H^{theory['mup']['hidden']:g} (muP)"),
        measurement=(f"muP spread x{2.0 ** spread:.2f}; SP falls x{2.0 ** sp_drift:.2f}"
                     + (f"; muP edge optima at {mup_edges}" if mup_edges else "")
                     + (f"; SP optima at a misleading edge at {sp_bad_edges}" if sp_bad_edges else "")
                     + f"; coord. check mean hidden slope SP {hidden_mean['sp']:.2f}, muP {hidden_mean['mup']:.2f}"),
        metric="muP spread of log2 optimal lr (trend removed), octaves; SP drift >= 2 octaves",
        error=spread, tolerance=MUP_TOLERANCE, passed=bool(passed),
        details={"widths": widths.tolist(),
                 "mup_log2_opt": mup["log2_opt"].round(3).tolist(), "sp_log2_opt": sp["log2_opt"].round(3).tolist(),
                 "mup_edges": mup_edges, "sp_edges": [str(e) for e in sp["edge"]], "sp_bad_edges": sp_bad_edges,
                 "sp_drift_octaves": round(sp_drift, 3), "sp_min_drift_octaves": SP_MIN_DRIFT,
                 "sp_predicted_drift_octaves": predicted_drift,
                 "coord_step": COORD_STEP, "coord_log2_lr": COORD_LOG2_LR, "coord_slopes": slopes,
                 "coord_judged_fields": hidden, "coord_mup_flat": mup_flat, "coord_sp_grows": sp_grows},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    widths, x = measurement["widths"], measurement["log2_lrs"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, p in zip(axes[0], PARAMETERIZATIONS):
        plot_loss_curves(ax, widths, x, measurement[p], optimizer="Adam", title=f"transformer, {p.upper()}")
    plot_optima(axes[1, 0], widths, [(p.upper(), measurement[p]["log2_opt"], prediction["lr_exponent"][p], c)
                                     for p, c in zip(PARAMETERIZATIONS, ("C3", "C0"))],
                band_at=measurement["mup"]["log2_opt"][0], passed=comparison.passed)
    ax = axes[1, 1]
    roles = measurement["coord_roles"]
    field_colors = plt.cm.plasma(np.linspace(0, 0.8, len(roles)))
    for (field, role), color in zip(roles.items(), field_colors):
        for p, style in zip(PARAMETERIZATIONS, ("-", "--")):
            values = measurement[p]["coord"][field]
            ax.plot(widths, values, style, marker="o", ms=3, color=color, label=f"{p.upper()} {field}")
            if role == "hidden":
                slope = prediction["coord_exponent"][p]["hidden"]
                ax.plot(widths, values[0] * (widths / widths[0]) ** slope, ":", color=color, lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("width H")
    ax.set_ylabel(f"RMS output after {COORD_STEP} steps (lr=2^{COORD_LOG2_LR:g})")
    ax.set_title("coordinate check (solid SP, dashed muP; dotted: theory slope)")
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="mup-transfer-transformer",
    claim=("On a transformer language model the loss-optimal Adam learning rate is stable across width under "
           "muP and falls like 1/width under SP."),
    formula="lr*(H) ∝ H^0 (muP),  lr*(H) ∝ H^-1 (SP);  Δz_hidden ∝ lr·H (SP), lr (muP)",
    source="Yang et al. 2022 (Tensor Programs V), Fig. 1, Sec. 3, Fig. 5, Tables 3 and 8",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
