"""LLC of deep linear networks: the SGLD estimate at a trained network equals Aoyagi's learning coefficient.

Claim (Lau, Furman, Wang, Murfet & Wei 2023; Aoyagi 2024): for a linear network
y = W_L ... W_1 x trained to a true map of rank r, the local learning
coefficient hat-lambda = n beta (E_w[L_n(w)] - L_n(w*)) under the localized
tempered posterior is the real log canonical threshold lambda(widths, r)
of Aoyagi's theorem (Aoyagi & Watanabe 2005 for two layers) -- far below
the regular d/2, and rising with the rank.

Experiment: task deep_linear (whitened inputs, D = 10 examples, output 4,
singular values 1.5 .. 1.0 for ranks 1, 2, 4), model deep_linear
10 -> 6 -> 4 (fast; the full mode adds a second hidden layer, 10 -> 6 -> 6 -> 4,
with ten times longer chains), trained from small init by full-batch GD until
the training loss is ~0. Measurement (in measure, from the stored parameters):
the SGLD estimator (lmech.instruments.local_learning_coefficient, Lau et al.
Algorithm 1) with loss half_sse (the Gaussian negative log-likelihood up to
a constant), full-batch gradients, n beta = 1e4 (the whitened design makes
L_n the population loss exactly, so the sample size enters only through
n beta: 1e4 is n / log n for a nominal n of about 1.2e5), gamma = 1,
epsilon = 5e-6, 4 chains.
Verdict: the worst relative error |hat-lambda - lambda| / lambda over ranks is
within 10%, every chain set has converged (split-half estimates within 5% and
the Gelman-Rubin R-hat of the post-burn-in loss traces below 1.1), every
network was trained to its target (loss <= 1e-4), and the estimates rise with
the rank as predicted. Scope: realizable, noise-free linear regression; the
SGLD estimator is asymptotic in n beta, so with multiplicity-2 poles (the
theorem's odd case) a -(m-1)/log(n beta) bias of order 0.1 remains.
"""

import math

import numpy as np
import torch

from lmech.instruments.local_learning_coefficient import local_learning_coefficient
from lmech.instruments.losses import named_loss
from lmech.models.family import build_model
from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.deep_linear import DeepLinearSpec
from lmech.theory.learning_coefficient import deep_linear_learning_coefficient, deep_linear_parameter_count

__all__ = ["PHENOMENON", "sgld_settings", "split_half_gap", "r_hat"]

TOLERANCE = 0.10  # worst relative error of the LLC over ranks
RANKS = (1, 2, 4)
INPUT, HIDDEN, OUTPUT = 10, 6, 4
N_BETA = 1e4
CONVERGED_GAP, CONVERGED_RHAT, TRAINED_LOSS = 0.05, 1.1, 1e-4


def sgld_settings(fast: bool) -> dict:
    """The sampler settings (epsilon * n beta * lambda_max(H) ~ 0.1: small discretization bias)."""
    steps = 4000 if fast else 40000
    return {"epsilon": 5e-6, "gamma": 1.0, "num_chains": 4 if fast else 8, "num_steps": steps,
            "num_burnin": steps // 4}


def _depths(fast: bool) -> tuple[int, ...]:
    return (1,) if fast else (1, 2)


def runs(fast: bool) -> list[RunSpec]:
    specs = []
    for depth in _depths(fast):
        for rank in RANKS:
            task = DeepLinearSpec(input_dim=INPUT, output_dim=OUTPUT,
                                  singular_values=tuple(np.round(np.linspace(1.5, 1.0, rank), 6).tolist()), n_test=16)
            model = ModelSpec(kind="deep_linear", activation="linear", bias=False, depth=depth, width=HIDDEN,
                              init_scale=0.1)
            specs += [RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=0.05), steps=3000,
                              seed=seed, observe={"loss": ObserveSpec(every=3000)})
                      for seed in range(1 if fast else 2)]
    return specs


def _widths(spec: RunSpec) -> list[int]:
    return [spec.task.input_dim] + [spec.model.width] * spec.model.depth + [spec.task.output_dim]


def _label(spec: RunSpec) -> str:
    return "-".join(map(str, _widths(spec))) + f" r={len(spec.task.singular_values)}"


def predict(specs: list[RunSpec]) -> dict:
    out = {}
    for spec in specs:
        widths = _widths(spec)
        rank = len(spec.task.singular_values)
        out[_label(spec)] = {"lambda": deep_linear_learning_coefficient(widths, rank),
                             "regular": deep_linear_parameter_count(widths) / 2, "rank": rank,
                             "depth": spec.model.depth}
    return out


def split_half_gap(trace: np.ndarray, burnin: int, n_beta: float, init_loss: float) -> float:
    """|estimate from the first half of the post-burn-in steps - second half| / their mean; trace (K, S)."""
    post = trace[:, burnin:]
    half = post.shape[1] // 2
    first, second = (n_beta * (post[:, :half].mean() - init_loss), n_beta * (post[:, half:].mean() - init_loss))
    return float(abs(first - second) / abs(0.5 * (first + second)))


def r_hat(trace: np.ndarray, burnin: int) -> float:
    """Gelman-Rubin potential scale reduction of the post-burn-in chains (K, S) (needs K >= 2)."""
    post = trace[:, burnin:]
    s = post.shape[1]
    within = post.var(axis=1, ddof=1).mean()
    between = s * post.mean(axis=1).var(ddof=1)
    return float(math.sqrt(((s - 1) / s * within + between / s) / within))


def _estimate(store, spec: RunSpec, fast: bool) -> dict:
    task = make_task(spec.task, spec.data_seed if spec.data_seed is not None else spec.seed)
    module = build_model(spec.model, task.input_shape, task.output_dim, task.vocab_size, spec.seed)
    params = store.params(spec.id)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(params[name.removeprefix("weights.")].reshape(parameter.shape))
    settings = sgld_settings(fast)
    n = task.x_train.shape[0]
    result = local_learning_coefficient(module, named_loss("half_sse"), (task.x_train, task.y_train),
                                        beta=N_BETA / n, seed=spec.seed, **settings)
    trace = result.loss_trace.numpy()
    running = N_BETA * (np.cumsum(trace.mean(0)) / np.arange(1, trace.shape[1] + 1) - result.init_loss)
    return {"estimate": result.estimate, "stderr": result.standard_error, "init_loss": result.init_loss,
            "gap": split_half_gap(trace, settings["num_burnin"], N_BETA, result.init_loss),
            "r_hat": r_hat(trace, settings["num_burnin"]), "running": running[::20],
            "chain_estimates": result.chain_estimates.numpy().tolist()}


def measure(store, specs: list[RunSpec]) -> dict:
    fast = len(specs) <= len(runs(True))
    out: dict[str, list] = {}
    for spec in specs:
        out.setdefault(_label(spec), []).append(_estimate(store, spec, fast))
    return {label: {"estimate": float(np.mean([r["estimate"] for r in rows])),
                    "stderr": float(np.mean([r["stderr"] for r in rows])),
                    "gap": float(max(r["gap"] for r in rows)), "r_hat": float(max(r["r_hat"] for r in rows)),
                    "init_loss": float(max(r["init_loss"] for r in rows)),
                    "running": np.mean([r["running"] for r in rows], axis=0)} for label, rows in out.items()}


def compare(prediction: dict, measurement: dict) -> Comparison:
    labels = list(prediction)
    relative = {k: abs(measurement[k]["estimate"] - prediction[k]["lambda"]) / prediction[k]["lambda"] for k in labels}
    worst = float(max(relative.values()))
    converged = all(measurement[k]["gap"] <= CONVERGED_GAP and measurement[k]["r_hat"] <= CONVERGED_RHAT
                    for k in labels)
    trained = all(measurement[k]["init_loss"] <= TRAINED_LOSS for k in labels)
    ordered = True
    for depth in {prediction[k]["depth"] for k in labels}:
        group = sorted((prediction[k]["rank"], k) for k in labels if prediction[k]["depth"] == depth)
        estimates = [measurement[k]["estimate"] for _, k in group]
        ordered = ordered and bool(np.all(np.diff(estimates) > 0))
    passed = worst <= TOLERANCE and converged and trained and ordered
    return Comparison(
        prediction=", ".join(f"{k}: λ={prediction[k]['lambda']:g}" for k in labels),
        measurement=", ".join(f"{k}: {measurement[k]['estimate']:.2f}±{measurement[k]['stderr']:.2f}" for k in labels),
        metric="worst relative error of the SGLD LLC vs Aoyagi's λ over ranks",
        error=worst, tolerance=TOLERANCE, passed=bool(passed),
        details={"relative_error": {k: round(v, 4) for k, v in relative.items()},
                 "regular_d_over_2": {k: prediction[k]["regular"] for k in labels},
                 "split_half_gap": {k: round(measurement[k]["gap"], 4) for k in labels},
                 "r_hat": {k: round(measurement[k]["r_hat"], 4) for k in labels},
                 "train_loss_at_w_star": {k: measurement[k]["init_loss"] for k in labels},
                 "chains_converged": bool(converged), "networks_trained": bool(trained),
                 "rises_with_rank": bool(ordered)},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    labels = list(prediction)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(labels)))
    for color, k in zip(colors, labels):
        running = measurement[k]["running"]
        steps = np.arange(len(running)) * 20
        ax.plot(steps, running, color=color, lw=1.2, label=f"{k}: running n·β·(L − L*)")
        ax.axhline(prediction[k]["lambda"], color=color, ls="--", lw=1)
    ax.set_xlabel("SGLD step")
    ax.set_ylabel("running LLC estimate (dashed: Aoyagi λ)")
    ax.set_title("Chains' convergence")
    ax.legend(fontsize=6)
    x = np.arange(len(labels))
    bx.bar(x - 0.2, [prediction[k]["lambda"] for k in labels], 0.4, label="Aoyagi λ (theory)", color="0.6")
    bx.bar(x + 0.2, [measurement[k]["estimate"] for k in labels], 0.4,
           yerr=[2 * measurement[k]["stderr"] for k in labels], label="SGLD LLC ± 2 s.e.", color="C3")
    bx.scatter(x, [prediction[k]["regular"] for k in labels], marker="_", s=400, color="k", label="regular d/2")
    bx.set_xticks(x, labels, rotation=30, fontsize=7)
    bx.set_ylabel("learning coefficient")
    bx.set_title("LLC of trained deep linear networks")
    bx.legend(fontsize=7)
    return fig


PHENOMENON = Phenomenon(
    name="llc-deep-linear",
    claim=("The SGLD local learning coefficient of a trained deep linear network equals Aoyagi's learning "
           "coefficient for its widths and target rank (well below d/2, rising with rank)."),
    formula=("λ = (r(H₁+H_{L+1}) − r²)/2 + a(ℓ−a)/(4ℓ) − ℓ(ℓ−1)/4·(S/ℓ)² + ½Σ_{i<j∈Σ}Δ_iΔ_j;  "
             "λ̂ = nβ(E_w L_n(w) − L_n(w*))"),
    source="Aoyagi 2024 (Neural Networks 172), Thm 1; Aoyagi & Watanabe 2005; Lau et al. 2023, Algorithm 1",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
