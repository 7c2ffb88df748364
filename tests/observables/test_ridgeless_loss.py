"""ridgeless_loss: min-norm solution and exact population loss vs brute force and vs GD's limit."""

import numpy as np
import torch

from lmech.models.mlp import ModelSpec
from lmech.observables.ridgeless_loss import ridgeless_loss
from lmech.spec import OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.power_law_features import PowerLawFeaturesSpec
from lmech.train import train_ensemble

MODEL = ModelSpec(depth=0, activation="linear", bias=False, init_scale=0.0)


def _observe(task_spec, steps, lr, seeds=(0,), data_seed=None):
    specs = [RunSpec(task=task_spec, model=MODEL, optimizer=OptimizerSpec(name="sgd", lr=lr), steps=steps,
                     seed=s, data_seed=data_seed, observe={}) for s in seeds]
    out = {}

    def observer(state):
        out[state.step] = ridgeless_loss(state)
        return {}

    train_ensemble(specs, observer, {0, steps})
    return out


def _brute_force(task_spec, seed, n_mc=200_000):
    """numpy pinv min-norm solution; loss by Monte Carlo over fresh latent inputs."""
    ex = make_task(task_spec, seed).extras
    phi, y = ex["features_train"].numpy(), ex["targets_train"].numpy()
    lam, u, w = ex["spectrum"].numpy(), ex["projection"].numpy(), ex["teacher"].numpy()
    b = np.linalg.pinv(phi) @ y
    x = np.random.default_rng(0).standard_normal((n_mc, lam.size)) * np.sqrt(lam)
    err = (x @ u.T @ b - x @ w) ** 2
    unweighted = float(np.sum((u.T @ b - w) ** 2))  # a wrong formula (Lambda left out), for a control
    return err.mean(), err.std() / np.sqrt(n_mc), float(w @ (lam * w)), unweighted


def test_matches_pinv_and_monte_carlo_in_both_regimes():
    for spec in (PowerLawFeaturesSpec(n_train=40, n_features=10, latent_dim=60, alpha=1.0),   # P > N
                 PowerLawFeaturesSpec(n_train=10, n_features=40, latent_dim=60, alpha=0.5)):  # P < N
        got = _observe(spec, 0, 0.1, seeds=(2,))[0]
        mc, se, zero_loss, unweighted = _brute_force(spec, 2)
        assert abs(float(got["min_norm"][0]) - mc) < 5 * se + 1e-6  # 5 Monte Carlo s.e.
        # the zero-init model's loss is the target's power w^T Lambda w (float32 output: 1e-5)
        assert abs(float(got["model"][0]) - zero_loss) < 1e-5 * zero_loss
        # negative control: the same check rejects the loss without the spectrum weights
        assert abs(unweighted - mc) > 5 * se


def test_gd_from_zero_converges_to_the_ridgeless_limit():
    # well-conditioned case (alpha 0.1, P = 4 < N = M = 32; condition numbers ~10): GD with each
    # member's lr = 1 / lambda_max of its Hessian phi^T phi / P, for 20 condition numbers
    spec = PowerLawFeaturesSpec(n_train=4, n_features=32, latent_dim=32, alpha=0.1)
    evals = [torch.linalg.eigvalsh(f @ f.T / 4) for f in
             (make_task(spec, s).extras["features_train"] for s in (0, 1))]
    steps = int(20 * max(float(e.max() / e.min()) for e in evals))
    specs = [RunSpec(task=spec, model=MODEL, optimizer=OptimizerSpec(name="sgd", lr=1.0 / float(e.max())),
                     steps=steps, seed=s, data_seed=None, observe={}) for s, e in zip((0, 1), evals)]
    out = {}

    def observer(state):
        out[state.step] = ridgeless_loss(state)
        return {}

    train_ensemble(specs, observer, {0, steps})
    limit, gd = out[steps]["min_norm"].double(), out[steps]["model"].double()
    start = out[0]["model"].double()
    assert torch.all((gd - limit).abs() <= 1e-3 * start)  # float32 GD, e^-20 of the gap left: 1e-3
    assert torch.all((start - limit).abs() > 0.05 * start)  # negative control: init is far from it
    assert torch.equal(out[0]["min_norm"], out[steps]["min_norm"])  # independent of params
