"""Muon's learning rate transfers across width; AdamW's, in SP on the same model and grid, does not.

Claim (Jordan et al. 2024, Muon; Bernstein & Newhouse 2024; Yang, Simon & Bernstein 2023, the
spectral condition): Muon replaces each hidden matrix's momentum by its orthogonal polar factor
(quintic Newton-Schulz) scaled by sqrt(max(1, fan_out / fan_in)), so the update's spectral
norm is lr * sqrt(fan_out / fan_in) at every width and it moves the layer's output
coordinates by Theta(lr): the optimal learning rate does not depend on width. AdamW's update is
Theta(lr) per entry, so a hidden matrix moves its outputs by Theta(lr * width) and the optimum
falls like 1/width (Yang et al. 2022, Sec. 3).

Experiment: the transformer language model of `mup-transfer-transformer` (1 pre-LN block fast,
2 full; 2 heads; MLP ratio 1; a random order-1 Markov chain over 16 tokens, minibatches of 8
sequences of 16), in SP with the readout initialised at zero (as the Muon reference recipe,
modded-nanogpt, does for its head), at widths 16..128 (8x, fast) or 16..256 (full), trained by
Muon (momentum 0.95, Nesterov, the "original" scale; embeddings, gains, biases and the readout
by AdamW at the same lr, adamw_lr_ratio 1) and by AdamW alone, on one log2 lr grid, no weight
decay in either. One (optimizer, width) is one ensemble job over lrs x seeds.

Measurement: per run the training loss averaged over the last fifth of training; its log
averaged over seeds (diverged: +inf); the optimum per width from a parabola through the
lowest point and its neighbours in log2 lr (`_lr_transfer`, shared with mup-transfer).

Verdict: Muon's optima span at most one octave (a factor 2) across the widths, none on a sweep
edge; AdamW's optimum falls by at least two octaves (a factor 4) from the smallest to the
largest width, an edge optimum accepted only where it can only understate that fall.

Scope: Muon's width-independence is a statement about the hidden matrices it orthogonalises.
Its AdamW parameters are not width-stable in SP: the readout's AdamW update moves the logits
by Theta(lr * width) once it has grown from zero, so at widths far beyond those tested here the
readout, not Muon, would set the optimum (muP's readout multiplier 1/m removes that; not
tested here). The claim is tested over 8x (fast) and 16x (full) widths on a tiny model.

Sources: Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"
(kellerjordan.github.io/posts/muon), the update and its shape scale (torch.optim.Muon's
adjust_lr "original"); Bernstein & Newhouse 2024, "Old optimizer, new norm", and Yang, Simon
& Bernstein 2023 (arXiv 2310.17813), condition 1 (spectral norm of the update ∝
sqrt(fan_out/fan_in)) for why that scale is width-stable; Yang et al. 2022 (Tensor Programs V),
Sec. 3, for AdamW's 1/width drift in SP.
"""


import numpy as np

from lmech.models.transformer import TransformerSpec
from lmech.phenomena._lr_transfer import fit_optima, log_loss_curves, plot_loss_curves, plot_optima, transfer_checks
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.markov_language import MarkovLanguageSpec
from lmech.theory.mup import optimal_lr_exponent

__all__ = ["PHENOMENON", "MUON_LR_EXPONENT"]

OPTIMIZERS = ("muon", "adamw")
# Width exponent of Muon's optimal lr: its update's spectral norm is lr * sqrt(fan_out/fan_in) at any
# width, which moves a layer's outputs by Theta(lr) (Yang, Simon & Bernstein 2023, condition 1).
MUON_LR_EXPONENT = 0.0
MUON_TOLERANCE = 1.0  # octaves: Muon's optima within a factor 2
ADAMW_MIN_DRIFT = 2.0  # octaves: AdamW's optimum falls at least a factor 4 over the width range
MUON_MOMENTUM = 0.95  # the reference recipe's
HEADS = 2
SEQ_LEN = 16
BATCH = 8


def _settings(fast: bool) -> dict:
    if fast:
        return {"widths": [16, 32, 64, 128], "log2_lrs": list(range(-10, -3)), "seeds": 1, "steps": 150,
                "depth": 1, "n_train": 256}
    return {"widths": [16, 32, 64, 128, 256], "log2_lrs": list(range(-12, -1)), "seeds": 3, "steps": 400,
            "depth": 2, "n_train": 2048}


def _optimizer(name: str, log2_lr: int | float) -> OptimizerSpec:
    if name == "muon":
        return OptimizerSpec(name="muon", lr=2.0**log2_lr, momentum=MUON_MOMENTUM, batch_size=BATCH,
                             muon_lr_scale="original", adamw_lr_ratio=1.0)
    return OptimizerSpec(name="adamw", lr=2.0**log2_lr, weight_decay=0.0, batch_size=BATCH)


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    task = MarkovLanguageSpec(vocab_size=16, order=1, concentration=0.5, seq_len=SEQ_LEN, n_train=s["n_train"],
                              n_test=64)
    observe = {"loss": ObserveSpec(every=s["steps"] // 10)}
    specs = []
    for name in OPTIMIZERS:
        for width in s["widths"]:
            model = TransformerSpec(width=width, heads=HEADS, depth=s["depth"], context=SEQ_LEN, mlp_ratio=1.0,
                                    parameterization="sp", zero_init_readout=True)
            for log2_lr in s["log2_lrs"]:
                for seed in range(s["seeds"]):
                    specs.append(RunSpec(task=task, model=model, optimizer=_optimizer(name, log2_lr),
                                         steps=s["steps"], seed=seed, observe=observe))
    return specs


def predict(specs: list[RunSpec]) -> dict:
    """Theory only: the width exponent of each optimizer's optimal lr (Muon 0, AdamW in SP -1)."""
    widths = sorted({s.model.width for s in specs})
    return {"widths": np.asarray(widths, dtype=float),
            "lr_exponent": {"muon": MUON_LR_EXPONENT, "adamw": optimal_lr_exponent("sp")}}


def measure(store, specs: list[RunSpec]) -> dict:
    widths, log2_lrs, curves = log_loss_curves(store, specs, lambda s: s.optimizer.name)
    out = {"widths": widths, "log2_lrs": log2_lrs}
    for name in OPTIMIZERS:
        log2_opt, edges = fit_optima(log2_lrs, curves[name])
        out[name] = {"log_loss": curves[name], "log2_opt": log2_opt, "edge": edges}
    return out


def compare(prediction: dict, measurement: dict) -> Comparison:
    widths = measurement["widths"]
    muon, adamw = measurement["muon"], measurement["adamw"]
    exponent = prediction["lr_exponent"]
    checks = transfer_checks(widths, muon, exponent["muon"], adamw, exponent["adamw"])
    spread, adamw_drift, predicted_drift = checks["spread"], checks["drift"], checks["predicted_drift"]
    muon_edges, adamw_bad_edges = checks["flat_edges"], checks["bad_edges"]
    passed = (spread <= MUON_TOLERANCE and adamw_drift >= ADAMW_MIN_DRIFT and not muon_edges
              and not adamw_bad_edges)
    return Comparison(
        prediction=(f"Muon optimum flat (lr* ∝ H^{exponent['muon']:g}); AdamW (SP) falls "
                    f"x{2.0 ** predicted_drift:.3g} over {widths[0]:g}..{widths[-1]:g}"),
        measurement=(f"Muon spread x{2.0 ** spread:.2f}; AdamW falls x{2.0 ** adamw_drift:.2f}"
                     + (f"; Muon edge optima at {muon_edges}" if muon_edges else "")
                     + (f"; AdamW optima at a misleading edge at {adamw_bad_edges}" if adamw_bad_edges else "")),
        metric="Muon spread of log2 optimal lr across width, octaves; AdamW drift >= 2 octaves",
        error=spread, tolerance=MUON_TOLERANCE, passed=bool(passed),
        details={"widths": widths.tolist(),
                 "muon_log2_opt": muon["log2_opt"].round(3).tolist(),
                 "adamw_log2_opt": adamw["log2_opt"].round(3).tolist(),
                 "muon_edges": muon_edges, "adamw_edges": [str(e) for e in adamw["edge"]],
                 "adamw_bad_edges": adamw_bad_edges, "adamw_drift_octaves": round(adamw_drift, 3),
                 "adamw_min_drift_octaves": ADAMW_MIN_DRIFT, "adamw_predicted_drift_octaves": predicted_drift},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    widths, x = measurement["widths"], measurement["log2_lrs"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, name in zip(axes[:2], OPTIMIZERS):
        plot_loss_curves(ax, widths, x, measurement[name], optimizer="Muon" if name == "muon" else "AdamW",
                         title="Muon" if name == "muon" else "AdamW (SP)")
    plot_optima(axes[2], widths, [(name, measurement[name]["log2_opt"], prediction["lr_exponent"][name], c)
                                  for name, c in zip(OPTIMIZERS, ("C0", "C3"))],
                band_at=measurement["muon"]["log2_opt"][0], passed=comparison.passed)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="muon-transfer",
    claim=("Muon's shape-scaled orthogonalised update makes the loss-optimal learning rate stable across width; "
           "AdamW's optimum in SP falls with width."),
    formula="lr*_Muon(H) ∝ H^0 (‖ΔW‖₂ = lr·sqrt(fan_out/fan_in)),  lr*_AdamW(H) ∝ H^-1 (SP)",
    source=("Jordan et al. 2024 (Muon); Yang, Simon & Bernstein 2023 (spectral condition); "
            "Yang et al. 2022 (Tensor Programs V), Sec. 3"),
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
