"""flat-minima: rank statistics against scipy, the rescaling map against an explicit Hessian, the verdict on
synthetic sweeps (pass and fail cases), the spec, and --fast end to end."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from lmech.models.mlp import MemberModule, ModelSpec, init_params, plan_model
from lmech.phenomena.flat_minima import (MIN_SPEARMAN, PHENOMENON, RESCALE, bootstrap_spearman, compare, predict,
                                         rescale_layers, runs, spearman)
from lmech.spec import group_key

torch.set_num_threads(1)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    x[:5] = x[0]  # ties get average ranks
    assert abs(spearman(x, y) - spearmanr(x, y)[0]) < 1e-12
    assert spearman(x, 3 * x + 1) == pytest.approx(1.0) and math.isnan(spearman(np.ones(5), y[:5]))


def test_bootstrap_interval_separates_signal_from_noise():
    rng = np.random.default_rng(1)
    x = np.arange(18, dtype=float)
    low, high = bootstrap_spearman(x, x + rng.normal(0, 2, 18), resamples=500)
    assert 0.5 < low <= high <= 1.0
    low, high = bootstrap_spearman(x, rng.normal(size=18), resamples=500)
    assert low < 0 < high  # negative control: independent values give an interval around 0


def test_rescaling_keeps_the_function_and_conjugates_the_hessian():
    """f is unchanged and the Hessian becomes D^-1 H D^-1 (explicit Hessians in float64)."""
    plan = plan_model(ModelSpec(width=5, depth=2), 3, 2, "sgd")
    params = {n: v[0].double() for n, v in init_params(plan, [0], [1.0], False).items()}
    params = {n: v + 0.1 if n.startswith("b") else v for n, v in params.items()}  # nonzero biases
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=g).double(), torch.randint(0, 2, (16,), generator=g)
    c = 3.0
    scaled = rescale_layers(params, c)
    names = list(params)

    def loss_of(flat):
        p, start = {}, 0
        for n in names:
            p[n] = flat[start:start + params[n].numel()].view_as(params[n])
            start += params[n].numel()
        h = torch.relu(x @ p["W0"] + p["b0"])
        h = torch.relu(h @ p["W1"] + p["b1"])
        return torch.nn.functional.cross_entropy(h @ p["W2"] + p["b2"], y)

    flat = lambda q: torch.cat([q[n].reshape(-1) for n in names])  # noqa: E731
    assert abs(float(loss_of(flat(params)) - loss_of(flat(scaled)))) < 1e-12
    h0 = torch.autograd.functional.hessian(loss_of, flat(params))
    h1 = torch.autograd.functional.hessian(loss_of, flat(scaled))
    d = torch.cat([torch.full((params[n].numel(),), c if n in ("W0", "b0") else 1 / c if n == "W1" else 1.0,
                              dtype=torch.float64) for n in names])
    expected = h0 / d[:, None] / d[None, :]
    assert torch.linalg.norm(h1 - expected) / torch.linalg.norm(expected) < 1e-10
    module = lambda q: MemberModule(plan, {n: v.unsqueeze(0) for n, v in q.items()}, 0)  # noqa: E731
    with torch.no_grad():
        assert torch.allclose(module(params)(x), module(scaled)(x), atol=1e-12)
    assert set(scaled) == set(params) and scaled["W2"] is params["W2"]  # the original dict is left as it was


def _measurement(rho_target: float = 0.95, factor: float = 15.0, output_change: float = 1e-7, n: int = 18,
                 seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sharp = np.linspace(5, 15, n)
    noise = rng.normal(size=n)
    gap = rho_target * (sharp - sharp.mean()) / sharp.std() + math.sqrt(1 - rho_target ** 2) * noise
    rows = [{"batch": 16 * (i // 3 + 1), "seed": i % 3, "train_loss": 0.2, "test_loss": 0.2 + g, "gap": float(g),
             "sharpness": float(s), "n_eff": float(8 + s / 10)} for i, (s, g) in enumerate(zip(sharp, gap))]
    return {"runs": rows, "expected_runs": n,
            "control": {"c": RESCALE, "run": "x", "output_change": output_change, "test_loss": (1.6, 1.6),
                        "top_eigenvalue": (6.0, 6.0 * factor)}}


PREDICTION = {"min_spearman": MIN_SPEARMAN, "rescale": RESCALE, "function_tol": 1e-4, "z": 1.0, "batches": []}


def test_correlated_sweep_with_a_working_control_passes():
    comparison = compare(PREDICTION, _measurement())
    assert comparison.passed, comparison.details
    assert "not an invariant" in comparison.measurement


def test_uncorrelated_gap_fails():
    comparison = compare(PREDICTION, _measurement(rho_target=0.0))
    assert not comparison.passed and comparison.error < MIN_SPEARMAN


def test_control_that_changes_the_function_or_not_the_sharpness_fails():
    assert not compare(PREDICTION, _measurement(output_change=1e-2)).details["rescaled_function_unchanged"]
    assert not compare(PREDICTION, _measurement(output_change=1e-2)).passed
    comparison = compare(PREDICTION, _measurement(factor=2.0))  # moved by less than c = 5
    assert not comparison.passed and not comparison.details["rescaling_moves_top_eigenvalue_by_c"]


def test_missing_runs_fail():
    m = _measurement()
    m["runs"] = m["runs"][:-2]
    assert not compare(PREDICTION, m).passed


def test_spec_sweeps_batch_with_seed_ensembles():
    for fast in (True, False):
        specs = runs(fast)
        batches = {s.optimizer.batch_size for s in specs}
        assert None in batches and len(batches) >= 6
        assert len({group_key(s) for s in specs}) == len(batches)  # one ensemble job per batch size
        assert all(len({s.optimizer.lr for s in specs}) == 1 for _ in (0,))
    assert sum(s.steps for s in runs(True)) <= sum(s.steps for s in runs(False))
    assert predict(runs(True))["rescale"] == RESCALE


@pytest.mark.slow
def test_fast_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison


def test_bootstrap_equals_a_loop_over_resamples():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=12), rng.normal(size=12)
    index = np.random.default_rng(7).integers(0, 12, (300, 12))
    draws = [spearman(x[i], y[i]) for i in index]
    draws = [d for d in draws if math.isfinite(d)]
    expected = np.quantile(draws, [0.025, 0.975])
    assert np.allclose(bootstrap_spearman(x, y, resamples=300, seed=7), expected, atol=1e-12)
