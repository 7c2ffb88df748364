"""Double descent: min-norm least squares on isotropic Gaussian features, risk vs gamma = p/n.

Claim: gradient descent from zero init on the squared loss converges to the
min-norm least-squares solution; its excess risk follows the asymptotic formula
of Hastie, Montanari, Rosset & Tibshirani (2019), with a peak at gamma = 1:
sigma^2 gamma/(1 - gamma) below 1 and r^2 (1 - 1/gamma) + sigma^2/(gamma - 1) above.

Experiment: for each gamma, one ensemble job of many seeds, each seed drawing its
own data (n fixed, p = gamma n), a bias-free linear model from zero init trained
by full-batch GD with lr = 0.9 / (1 + sqrt gamma)^2 (the Marchenko-Pastur upper
edge of the Hessian's spectrum) for enough steps to resolve the smallest
eigenvalue (about 10 condition numbers of the MP spectrum, capped).
Measurement: |beta_hat - beta|^2 averaged over seeds. Verdict: the largest
relative error over gamma is within tolerance, and the measured risk is largest
at the gammas next to 1.
"""

import math

import numpy as np

from lmech.models.mlp import ModelSpec
from lmech.phenomena.verdict import Comparison, Phenomenon
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.theory.double_descent import min_norm_risk

__all__ = ["PHENOMENON"]

NOISE, SIGNAL = 0.5, 1.0
TOLERANCE = 0.25  # largest relative error of the seed-mean risk over gamma (finite n)


def _gammas(fast: bool) -> list[float]:
    if fast:
        return [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0]
    return [0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0]


def _steps(gamma: float) -> int:
    edge_low = (1 - math.sqrt(gamma)) ** 2 if gamma < 1 else (math.sqrt(gamma) - 1) ** 2 / gamma
    edge_high = (1 + math.sqrt(gamma)) ** 2 if gamma < 1 else (math.sqrt(gamma) + 1) ** 2 / gamma
    return int(min(20000, math.ceil(10 * edge_high / edge_low / 0.9)))


def runs(fast: bool) -> list[RunSpec]:
    n = 100 if fast else 200
    seeds = range(24 if fast else 48)
    specs = []
    for gamma in _gammas(fast):
        p = int(round(gamma * n))
        task = GaussianRegressionSpec(n_train=n, n_test=10, input_dim=p, noise=NOISE, signal_norm=SIGNAL)
        model = ModelSpec(depth=0, activation="linear", bias=False, init_scale=0.0)
        # Hessian of 0.5 mean (x.b - y)^2 is X^T X / n; for p > n its nonzero spectrum is gamma * MP(1/gamma).
        lr = 0.9 / (1 + math.sqrt(gamma)) ** 2
        steps = _steps(gamma)
        for seed in seeds:
            specs.append(RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="sgd", lr=lr),
                                 steps=steps, seed=seed, data_seed=None,
                                 observe={"coefficient_error": ObserveSpec(every=steps)}))
    return specs


def _gamma_of(spec: RunSpec) -> float:
    return spec.task.input_dim / spec.task.n_train


def predict(specs: list[RunSpec]) -> dict:
    gammas = np.asarray(sorted({_gamma_of(s) for s in specs}))
    grid = np.geomspace(gammas.min(), gammas.max(), 400)
    grid = grid[np.abs(grid - 1) > 0.02]
    return {"gamma": gammas, "risk": min_norm_risk(gammas, signal=SIGNAL, noise=NOISE),
            "grid": grid, "grid_risk": min_norm_risk(grid, signal=SIGNAL, noise=NOISE)}


def measure(store, specs: list[RunSpec]) -> dict:
    by_gamma: dict[float, list[float]] = {}
    for spec in specs:
        _, values = store.series(spec.id, "coefficient_error/value")
        by_gamma.setdefault(_gamma_of(spec), []).append(values[-1])
    gammas = np.asarray(sorted(by_gamma))
    samples = [np.asarray(by_gamma[g]) for g in gammas]
    return {"gamma": gammas, "risk": np.asarray([s.mean() for s in samples]),
            "stderr": np.asarray([s.std(ddof=1) / math.sqrt(len(s)) for s in samples])}


def compare(prediction: dict, measurement: dict) -> Comparison:
    predicted, measured = prediction["risk"], measurement["risk"]
    relative = np.abs(measured - predicted) / predicted
    gammas = measurement["gamma"]
    below, above = gammas[gammas < 1], gammas[gammas > 1]
    neighbours = {below.max(), above.min()} if len(below) and len(above) else set()
    peak = float(gammas[int(np.argmax(measured))])
    peak_ok = peak in neighbours
    worst = float(relative.max())
    return Comparison(
        prediction=f"peak next to gamma=1; risk {predicted.min():.2f}..{predicted.max():.2f}",
        measurement=f"peak at gamma={peak:g}; risk {measured.min():.2f}..{measured.max():.2f}",
        metric="max relative error of mean risk over gamma",
        error=worst, tolerance=TOLERANCE, passed=worst <= TOLERANCE and peak_ok,
        details={"gamma": gammas.tolist(), "relative_error": relative.round(4).tolist(),
                 "peak_gamma": peak, "peak_next_to_one": peak_ok},
    )


def figure(prediction: dict, measurement: dict, comparison: Comparison):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(prediction["grid"], prediction["grid_risk"], "-", color="k", lw=1.5,
            label="Hastie et al. 2019 (asymptotic)")
    ax.errorbar(measurement["gamma"], measurement["risk"], yerr=2 * measurement["stderr"], fmt="o",
                color="C3", label="GD from zero init (mean ± 2 s.e.)")
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gamma = p / n")
    ax.set_ylabel("excess test risk")
    ax.set_title("Double descent of min-norm least squares")
    ax.legend(fontsize=8)
    return fig


PHENOMENON = Phenomenon(
    name="double-descent",
    claim="Min-norm least squares (GD from zero) has excess risk σ²γ/(1−γ) below γ=1 and r²(1−1/γ)+σ²/(γ−1) above: a peak at γ=1.",
    formula="R(γ) = σ²γ/(1−γ) (γ<1);  r²(1−1/γ) + σ²/(γ−1) (γ>1)",
    source="Hastie, Montanari, Rosset & Tibshirani 2019, Theorem 1 / eq. (9)",
    runs=runs, predict=predict, measure=measure, compare=compare, figure=figure,
)
