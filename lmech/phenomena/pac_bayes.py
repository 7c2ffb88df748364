"""PAC-Bayes: a non-vacuous generalization bound for a trained network, and a vacuous one for random labels.

Claim (Dziugaite & Roy 2017; Lotfi et al. 2022): a PAC-Bayes bound with a prior fixed before the
data, evaluated at a Gaussian posterior around the trained weights, certifies a test error far
below 1/2 for a network trained on n >= 10,000 examples of a learnable task, while the same
procedure on randomly labelled data certifies nothing (>= 1/2), as it must.

Experiment: the binary teacher task (x ~ N(0, I_20), labels the sign of a random 4-unit tanh
teacher; n = 10,000 training and 5,000 held-out examples), a one-hidden-layer ReLU MLP of width 16
(370 parameters), minibatch SGD (lr 0.1, batch 100, 1000 steps); true labels for seeds 0-1 and
random labels (fair coins, the same inputs) for seed 0, each label kind one ensemble job. Full mode:
n = 30,000, five true-label and three random-label seeds, 2000 steps, 6 posterior scales, 2,000 draws.

Measurement (the bound, `lmech.theory.pac_bayes.gibbs_error_bound`, stated exactly there): prior
P_j = N(theta_0, diag(c_j s)^2) centred at the initialization theta_0 (a function of the seed only,
never of the data), s = each layer's initialization standard deviation (biases: their layer's),
c_j on a grid of J scales fixed in advance; posterior Q_j = N(theta, diag(c_j s)^2) around the trained
weights theta, so KL(Q_j || P_j) = sum (theta - theta_0)^2 / (2 c_j^2 s^2). Its training error
e_S(Q_j) is estimated from m weight draws; the bound of each j uses delta / J and delta' / J, so the
smallest of the J bounds holds with probability >= 1 - delta - delta' (delta = 0.025, delta' = 0.01).
The held-out Gibbs error of the chosen Q (same number of draws, the 5,000 test examples) is what it bounds.

Verdict: error = the largest bound over the true-label seeds, <= 0.35; sub-checks: every seed's
bound is >= its held-out Gibbs error (validity, the event of probability >= 96.5%) and every
random-label seed's bound is >= 0.5.

Scope: the posterior mean is the SGD solution itself (no optimization of the bound over the mean,
as Dziugaite & Roy do), only its scale is chosen, so the bound is looser than theirs; it is
non-vacuous here because the network is small (370 parameters) against n. Width, steps and n move it:
a width-64 net at n = 10,000 measured about 0.32, m = 100 draws about 0.4 (the Monte-Carlo term).
Cost: the Monte-Carlo error is J * m forward passes over the n training examples.
"""

import math

import numpy as np
import torch

from lmech.models.mlp import ModelSpec, forward, init_params, plan_model
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.seeding import generator
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.binary_teacher import BinaryTeacherSpec
from lmech.theory.pac_bayes import gaussian_kl_diagonal, gibbs_error_bound

__all__ = ["PHENOMENON", "gibbs_errors", "bound_over_grid"]

MAX_BOUND = 0.35  # non-vacuous: the certified error of every true-label seed is at most this
RANDOM_MIN = 0.5  # the random-label bound must certify nothing better than chance
DELTA, DELTA_PRIME = 0.025, 0.01  # confidence of the PAC-Bayes step and of the Monte-Carlo step
CHUNK = 50  # posterior draws per batched forward pass (memory ~ CHUNK * n * width floats)


def _settings(fast: bool) -> dict:
    if fast:
        return {"n_train": 10_000, "seeds": [0, 1], "random_seeds": [0], "scales": [0.35, 0.5, 0.7, 1.0],
                "draws": 600, "width": 16, "steps": 1000}
    return {"n_train": 30_000, "seeds": [0, 1, 2, 3, 4], "random_seeds": [0, 1, 2],
            "scales": [0.3, 0.35, 0.42, 0.5, 0.6, 0.7], "draws": 2000, "width": 16, "steps": 2000}


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    specs = []
    for random_labels, seeds in ((False, s["seeds"]), (True, s["random_seeds"])):
        task = BinaryTeacherSpec(n_train=s["n_train"], n_test=5_000, input_dim=20, teacher_width=4,
                                 random_labels=random_labels)
        for seed in seeds:
            specs.append(RunSpec(task=task, model=ModelSpec(width=s["width"], depth=1),
                                 optimizer=OptimizerSpec(name="sgd", lr=0.1, batch_size=100),
                                 steps=s["steps"], seed=seed, observe={"accuracy": ObserveSpec(every=s["steps"])}))
    return specs


def predict(specs: list[RunSpec]) -> dict:
    """The theorem's guarantee and the claim's thresholds (no measurement)."""
    fast = max(s.task.n_train for s in specs) <= _settings(True)["n_train"]
    s = _settings(fast)
    return {"max_bound": MAX_BOUND, "random_min": RANDOM_MIN, "delta": DELTA, "delta_prime": DELTA_PRIME,
            "scales": s["scales"], "draws": s["draws"], "confidence": 1 - DELTA - DELTA_PRIME}


def gibbs_errors(plan, theta: dict[str, torch.Tensor], std: dict[str, torch.Tensor], draws: int,
                 inputs: list[torch.Tensor], labels: list[torch.Tensor], gen: torch.Generator) -> list[float]:
    """Monte-Carlo 0-1 errors of the Gibbs classifier theta + std * N(0, I), one per (inputs, labels) set.

    theta, std: {name: tensor without the K axis} (std broadcastable to it); inputs (N, D), labels (N,)
    int64. Each of the `draws` weight draws is used on every set (draws are stacked as ensemble
    members, CHUNK at a time, through the MLP's batched forward). Returns the error averaged over
    draws and examples, per set. Cost: draws forward passes over each set.
    """
    wrong = [0.0] * len(inputs)
    done = 0
    while done < draws:
        k = min(CHUNK, draws - done)
        params = {name: value.unsqueeze(0) + std[name] * torch.randn((k, *value.shape), generator=gen)
                  for name, value in theta.items()}
        params = {name: value if name.startswith("W") else value.reshape(k, 1, -1) for name, value in params.items()}
        with torch.no_grad():
            for i, (x, y) in enumerate(zip(inputs, labels)):
                wrong[i] += float((forward(plan, params, x).argmax(-1) != y).double().sum())  # (k, N) -> count
        done += k
    return [w / (draws * len(y)) for w, y in zip(wrong, labels)]


def bound_over_grid(train_errors: list[float], kls: list[float], n: int, draws: int) -> list[float]:
    """The bound at each grid point j, each with delta / J and delta' / J (union bound over the J points)."""
    j = len(train_errors)
    return [gibbs_error_bound(e, draws, kl, n, DELTA / j, DELTA_PRIME / j) for e, kl in zip(train_errors, kls)]


def _run_bound(store, spec: RunSpec, scales: list[float], draws: int) -> dict:
    task = make_task(spec.task, spec.data_seed if spec.data_seed is not None else spec.seed)
    plan = plan_model(spec.model, task.input_dim, task.output_dim, "sgd")
    start = {k: v[0] for k, v in init_params(plan, [spec.seed], [spec.model.init_scale]).items()}
    theta = store.params(spec.id)
    start = {k: start[k].reshape(theta[k].shape) for k in theta}
    base = {k: plan.layers[int(k[1:])].init_std * spec.model.init_scale * torch.ones_like(theta[k]) for k in theta}
    delta_theta = np.concatenate([(theta[k] - start[k]).double().numpy().ravel() for k in theta])
    s = np.concatenate([base[k].double().numpy().ravel() for k in theta])
    n = int(task.x_train.shape[0])
    gen = generator(spec.seed, "pac_bayes/posterior")
    train, test, kls = [], [], []
    for c in scales:
        tr, te = gibbs_errors(plan, theta, {k: c * v for k, v in base.items()}, draws,
                              [task.x_train, task.x_test], [task.y_train, task.y_test], gen)
        train.append(tr)
        test.append(te)
        kls.append(gaussian_kl_diagonal(delta_theta, np.zeros_like(delta_theta), c * s, c * s))
    bounds = bound_over_grid(train, kls, n, draws)
    best = int(np.argmin(bounds))
    accuracy = store.series(spec.id, "accuracy/test")[1]
    return {"seed": spec.seed, "random_labels": spec.task.random_labels, "n": n, "bounds": bounds,
            "train_gibbs": train, "test_gibbs": test, "kl": kls, "best": best, "bound": bounds[best],
            "heldout_gibbs": test[best], "test_error": 1.0 - accuracy[-1] if accuracy else math.nan}


def measure(store, specs: list[RunSpec]) -> dict:
    s = predict(specs)
    rows = [_run_bound(store, spec, s["scales"], s["draws"]) for spec in specs]
    return {"scales": s["scales"], "draws": s["draws"], "true": [r for r in rows if not r["random_labels"]],
            "random": [r for r in rows if r["random_labels"]]}


def compare(prediction: dict, measurement: dict) -> Comparison:
    true, rnd = measurement["true"], measurement["random"]
    if not true or not rnd:
        return Comparison(prediction="", measurement="missing true- or random-label runs",
                          metric="largest true-label bound", error=math.inf, tolerance=prediction["max_bound"],
                          passed=False)
    worst = max(r["bound"] for r in true)
    valid = all(r["bound"] >= r["heldout_gibbs"] for r in true + rnd)
    random_vacuous = all(r["bound"] >= prediction["random_min"] for r in rnd)
    passed = bool(worst <= prediction["max_bound"] and valid and random_vacuous)
    fmt = lambda r: (f"seed {r['seed']}: bound {r['bound']:.3f} at c={measurement['scales'][r['best']]:g} "  # noqa: E731
                     f"(MC train {r['train_gibbs'][r['best']]:.3f}, KL {r['kl'][r['best']]:.0f} nats, n {r['n']}), "
                     f"held-out Gibbs {r['heldout_gibbs']:.3f}, deterministic test error {r['test_error']:.3f}")
    return Comparison(
        prediction=(f"with probability >= {prediction['confidence']:.3f}: every bound >= its held-out error; "
                    f"true labels: bound <= {prediction['max_bound']:g}; random labels: bound >= {prediction['random_min']:g}"),
        measurement="true labels: " + "; ".join(fmt(r) for r in true) + ". random labels: " + "; ".join(fmt(r) for r in rnd),
        metric="largest PAC-Bayes bound on the Gibbs test error over true-label seeds",
        error=float(worst), tolerance=prediction["max_bound"], passed=passed, direction="<=",
        details={"bounds_true": [round(r["bound"], 4) for r in true],
                 "heldout_gibbs_true": [round(r["heldout_gibbs"], 4) for r in true],
                 "bounds_random": [round(r["bound"], 4) for r in rnd],
                 "heldout_gibbs_random": [round(r["heldout_gibbs"], 4) for r in rnd],
                 "delta": prediction["delta"], "delta_prime": prediction["delta_prime"],
                 "bound_valid_every_seed": bool(valid), "random_labels_bound_at_least_half": bool(random_vacuous)},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    scales = measurement["scales"]
    for ax, rows, title in ((axes[0], measurement["true"], "true labels"), (axes[1], measurement["random"], "random labels")):
        for i, r in enumerate(rows):
            ax.plot(scales, r["bounds"], "o-", color=f"C{i}", label=f"bound, seed {r['seed']}")
            ax.plot(scales, r["test_gibbs"], "s--", color=f"C{i}", alpha=0.7, label=f"held-out Gibbs error, seed {r['seed']}")
            ax.plot(scales, r["train_gibbs"], ":", color=f"C{i}", alpha=0.7, label=f"MC train error, seed {r['seed']}")
        line = prediction["max_bound"] if rows is measurement["true"] else prediction["random_min"]
        ax.axhline(line, color="grey", ls=":", lw=1, label=f"{'non-vacuous' if line < 0.5 else 'chance'} line {line:g}")
        ax.set_xscale("log")
        ax.set_xlabel("posterior = prior scale c (x layer init std)")
        ax.set_ylabel("0-1 error")
        ax.set_title(title)
        ax.legend(fontsize=6)
    fig.suptitle(f"PAC-Bayes bound (confidence {prediction['confidence']:.3f}): {'PASS' if comparison.passed else 'FAIL'}")
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="pac-bayes",
    claim=("A PAC-Bayes bound with a prior centred at the initialization certifies a non-vacuous test error for a "
           "trained network on n >= 10,000 examples, and nothing (>= 1/2) for the same network on random labels."),
    formula=r"e(Q) <= kl^{-1}(kl^{-1}(\hat e_m, ln(2J/\delta')/m), (KL(Q||P) + ln(2J\sqrt{n}/\delta))/n) <= 0.35",
    source=("Dziugaite & Roy 2017 (arXiv 1703.11008), eq. 5 and Sec. 3; Maurer 2004, Thm. 5; Langford & Caruana 2001; "
            "Lotfi et al. 2022 (arXiv 2211.13609)"),
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
