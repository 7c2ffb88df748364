"""Linear mode connectivity: children spawned later from one SGD trajectory end in one linearly connected basin.

Claim (Frankle, Dziugaite, Roy & Carbin 2020, "Linear mode connectivity and the
lottery ticket hypothesis", ICML, Sec. 3, instability of unpruned networks): train a parent network for
k steps, copy it twice and finish training both copies with different SGD noise
(minibatch orders). At k = 0 the two children are separated by a loss barrier on
the straight line between them (the network is "unstable"); from a spawn step early
in training on, the barrier vanishes (the children are linearly mode connected).

Experiment: MNIST-1D (4,000 generated examples, 80% train; Greydanus 2020), an
MLP 40-64-64-10 (ReLU, SP), cross-entropy, SGD lr 0.05 with momentum 0.9, batch
32, a constant rate, STEPS steps in all. For each parent seed and spawn step k
in SPAWN_STEPS, two children share the parent's init and minibatch order for the
first k steps (RunSpec.order_switch_step = k) and draw their own orders after
(order_seed ORDER_SEEDS[0] / [1]). Seeds, spawn steps and order seeds are
ensemble scalars, so the whole experiment trains as ONE vectorized ensemble job.
The children of one k reproduce the parent's first k steps exactly (a parent run
is not needed). Fast: 3 parent seeds, k in {0, 30, 100, 300}, 2,000 steps; full:
6 parent seeds, k in {0, 10, 30, 100, 300, 1000}, 3,000 steps.

Measurement: per pair, the training-set cross-entropy (nats) on 11 equally spaced
points of the segment between the children's final parameters, and its barrier
max_a [L(a) - ((1 - a) L(0) + a L(1))] (lmech.instruments.loss_barrier; the
chord form, >= 0). Per k, the median over parent seeds.

Verdict: the precise, falsifiable form tested here (train loss, chord barrier):
(1) the median barrier at k = 0 is >= MIN_BARRIER_AT_0 nats (instability at init);
(2) some spawn step k <= EARLY_FRACTION * STEPS has a median barrier below
FALL_FRACTION (10%) of the k = 0 barrier. The error is the smallest such ratio
barrier(k) / barrier(0) over the early spawn steps, tolerance FALL_FRACTION; (3)
the children trained (mean final train loss <= half of ln C, C = 10 classes).
Frankle et al. measure the barrier in test error against the mean of the
endpoints; the chord barrier in train loss is the quantity lmech's instrument
bounds and the one in which the k = 0 instability of this small network shows.

Scope: the onset step depends on the noise scale; at lr 0.02 with a cosine decay
(same momentum) the k = 0 barrier is only ~0.05 nats, and with SGD without momentum at lr 0.1 on the
digits the MLP is stable from init (barrier < 1e-3 nats, like LeNet on MNIST in
Frankle et al.; the claim then has nothing to fall from). The test-set barrier of these
children is ~0 at every k (interpolation does not raise the held-out loss), so it
is not the measured quantity. Permutation alignment is not applied (none is
needed: the children share an init).

Cost: fast, 24 members x 2,000 steps in one ensemble job plus 12 x 11 forward
passes on the training set, about 10 CPU-seconds on one thread.
"""

import math

import numpy as np
import torch

from lmech.instruments.loss_barrier import loss_barrier
from lmech.instruments.losses import named_loss
from lmech.models.mlp import MemberModule, ModelSpec, plan_model
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.mnist1d import Mnist1dSpec

__all__ = ["PHENOMENON", "runs", "predict", "measure", "compare", "figure", "pair_barrier"]

MIN_BARRIER_AT_0 = 0.05  # nats: the k = 0 barrier must be at least this (instability at init)
FALL_FRACTION = 0.10  # the barrier must fall below this fraction of the k = 0 barrier ...
EARLY_FRACTION = 0.20  # ... at a spawn step within this fraction of training
ORDER_SEEDS = (1001, 1002)  # the two children's minibatch-order seeds after the spawn step
NUM_POINTS = 11


def _settings(fast: bool) -> dict:
    if fast:
        return {"seeds": 3, "spawn_steps": [0, 30, 100, 300], "steps": 2000}
    return {"seeds": 6, "spawn_steps": [0, 10, 30, 100, 300, 1000], "steps": 3000}


def runs(fast: bool) -> list[RunSpec]:
    s = _settings(fast)
    task = Mnist1dSpec(n_samples=4000)
    model = ModelSpec(width=64, depth=2, activation="relu")
    optimizer = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, batch_size=32)
    observe = {"loss": ObserveSpec(every=s["steps"])}
    return [RunSpec(task=task, model=model, optimizer=optimizer, steps=s["steps"], seed=seed,
                    order_seed=order, order_switch_step=k, observe=observe)
            for seed in range(s["seeds"]) for k in s["spawn_steps"] for order in ORDER_SEEDS]


def predict(specs: list[RunSpec]) -> dict:
    """The bounds: a barrier >= MIN_BARRIER_AT_0 at k = 0, below FALL_FRACTION of it by the early limit."""
    steps = max(s.steps for s in specs)
    return {"min_barrier_at_0": MIN_BARRIER_AT_0, "fall_fraction": FALL_FRACTION,
            "early_limit": EARLY_FRACTION * steps, "steps": steps}


def _member(plan, params: dict[str, torch.Tensor]) -> MemberModule:
    return MemberModule(plan, {n: v.unsqueeze(0) for n, v in params.items()}, 0)


def pair_barrier(plan, params0: dict[str, torch.Tensor], params1: dict[str, torch.Tensor], batch,
                 loss: str = "cross_entropy", num_points: int = NUM_POINTS):
    """The loss barrier (lmech.instruments.loss_barrier) between two stored MLP members.

    params0, params1: {name: tensor} as the store saves them (no K axis); batch: (x (N, D), y (N,)).
    Cost: num_points forward passes on the batch.
    """
    module = _member(plan, params0)
    theta = lambda params: {n: v.detach() for n, v in _member(plan, params).named_parameters()}  # noqa: E731
    return loss_barrier(module.eval(), named_loss(loss), batch, theta(params0), theta(params1),
                        num_points=num_points)


def measure(store, specs: list[RunSpec]) -> dict:
    """Per spawn step: the barriers (one per parent seed), their median, and the endpoints' train loss."""
    first = specs[0]
    task = make_task(first.task, first.data_seed if first.data_seed is not None else first.seed)
    plan = plan_model(first.model, task.input_dim, task.output_dim, "sgd")
    pairs: dict[tuple[int, int], dict[int, RunSpec]] = {}
    for spec in specs:
        pairs.setdefault((spec.seed, spec.order_switch_step), {})[spec.order_seed] = spec
    barriers: dict[int, list[float]] = {}
    endpoint_loss: list[float] = []
    paths: dict[int, list] = {}
    for (seed, k), children in sorted(pairs.items()):
        a, b = (children[o] for o in sorted(children))
        result = pair_barrier(plan, store.params(a.id), store.params(b.id), (task.x_train, task.y_train),
                              first.loss or task.loss)
        barriers.setdefault(k, []).append(result.barrier)
        paths.setdefault(k, []).append(result.losses.tolist())
        endpoint_loss += [float(result.losses[0]), float(result.losses[-1])]
    ks = sorted(barriers)
    return {"spawn_steps": ks, "barriers": {k: barriers[k] for k in ks},
            "median": np.asarray([float(np.median(barriers[k])) for k in ks]),
            "paths": paths, "alphas": np.linspace(0, 1, NUM_POINTS).tolist(),
            "endpoint_train_loss": float(np.mean(endpoint_loss)), "classes": int(task.output_dim),
            "steps": max(s.steps for s in specs)}


def compare(prediction: dict, measurement: dict) -> Comparison:
    ks, median = list(measurement["spawn_steps"]), np.asarray(measurement["median"], dtype=float)
    at_0 = float(median[ks.index(0)]) if 0 in ks else math.nan
    early = [i for i, k in enumerate(ks) if 0 < k <= prediction["early_limit"]]
    ratios = {ks[i]: float(median[i] / at_0) if at_0 > 0 else math.inf for i in early}
    best = min(ratios.values(), default=math.inf)
    onset = next((k for k in sorted(ratios) if ratios[k] < prediction["fall_fraction"]), None)
    unstable_at_init = bool(at_0 >= prediction["min_barrier_at_0"])
    falls_early = bool(onset is not None)
    trained = bool(measurement["endpoint_train_loss"] <= 0.5 * math.log(measurement["classes"]))
    passed = bool(unstable_at_init and falls_early and trained and best < prediction["fall_fraction"])
    table = ", ".join(f"k={k}: {m:.4f}" for k, m in zip(ks, median))
    return Comparison(
        prediction=(f"barrier(k=0) >= {prediction['min_barrier_at_0']:g} nats, and below "
                    f"{prediction['fall_fraction']:.0%} of it for some spawn step k <= {prediction['early_limit']:g} "
                    f"(of {prediction['steps']} steps)"),
        measurement=(f"median train-loss barrier (nats) by spawn step: {table}; "
                     + (f"first below {prediction['fall_fraction']:.0%} at k={onset}" if onset is not None
                        else "never below the fraction early") + "; precise form: chord barrier of the training "
                     "cross-entropy on the segment between the children"),
        metric="min over early spawn steps of barrier(k) / barrier(0)",
        error=float(best), tolerance=prediction["fall_fraction"], passed=passed,
        details={"barrier_at_0": at_0, "ratios": {str(k): v for k, v in ratios.items()}, "onset_step": onset,
                 "barriers": {str(k): [float(x) for x in v] for k, v in measurement["barriers"].items()},
                 "endpoint_train_loss": measurement["endpoint_train_loss"],
                 "unstable_at_init": unstable_at_init, "barrier_falls_early": falls_early,
                 "children_trained": trained},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    ks, median = measurement["spawn_steps"], np.asarray(measurement["median"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    x = [max(k, 1) for k in ks]  # k = 0 drawn at 1 on the log axis
    for k, xk in zip(ks, x):
        ax.plot([xk] * len(measurement["barriers"][k]), measurement["barriers"][k], ".", color="grey", alpha=0.6)
    ax.plot(x, median, "o-", color="C0", label="measured median barrier (k=0 drawn at 1)")
    at_0 = comparison.details.get("barrier_at_0", math.nan)
    ax.axhline(prediction["min_barrier_at_0"], color="C3", ls=":", label="predicted: barrier(0) >= this")
    if math.isfinite(at_0):
        ax.axhline(prediction["fall_fraction"] * at_0, color="C2", ls="--", label="10% of barrier(0)")
    ax.axvline(prediction["early_limit"], color="grey", ls="--", lw=1, label="early limit")
    ax.set_xscale("log")
    ax.set_xlabel("spawn step k")
    ax.set_ylabel("train-loss barrier (nats)")
    ax.set_title(f"barrier vs spawn step ({'PASS' if comparison.passed else 'FAIL'})")
    ax.legend(fontsize=7)
    ax = axes[1]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(ks)))
    for color, k in zip(colors, ks):
        ax.plot(measurement["alphas"], measurement["paths"][k][0], "-", color=color, label=f"k={k}")
    ax.set_xlabel("interpolation coefficient a")
    ax.set_ylabel("train loss (parent seed 0)")
    ax.set_title("loss on the segment between the children")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


PHENOMENON = Phenomenon(
    name="mode-connectivity",
    claim="Two SGD children spawned from one parent at step k are separated by a loss barrier when k = 0, "
          "and are linearly mode connected (barrier below 10% of that) from a spawn step early in training.",
    formula="B(k) = max_a [L((1-a)θ_A + aθ_B) - ((1-a)L(θ_A) + aL(θ_B))];  B(0) ≥ 0.05 nats,  B(k*) < 0.1 B(0), k* ≤ 0.2T",
    source="Frankle, Dziugaite, Roy & Carbin 2020 (ICML), Sec. 3 (instability of unpruned networks vs the spawn step)",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
