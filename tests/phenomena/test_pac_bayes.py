"""pac-bayes: the verdict on synthetic bounds (pass and three fail cases), the Monte-Carlo error, the specs, end to end."""

import math

import pytest
import torch

from lmech.models.mlp import ModelSpec, plan_model
from lmech.phenomena.pac_bayes import PHENOMENON, bound_over_grid, compare, gibbs_errors, predict, runs
from lmech.spec import group_key


def _row(seed, bound, heldout, random_labels=False):
    return {"seed": seed, "random_labels": random_labels, "n": 10_000, "bounds": [bound + 0.05, bound],
            "train_gibbs": [0.1, 0.12], "test_gibbs": [0.1, heldout], "kl": [600.0, 300.0], "best": 1,
            "bound": bound, "heldout_gibbs": heldout, "test_error": heldout - 0.05}


def _measurement(true_bounds=(0.28, 0.27), heldout=(0.11, 0.11), random_bound=0.6):
    return {"scales": [0.35, 0.5], "draws": 600,
            "true": [_row(i, b, h) for i, (b, h) in enumerate(zip(true_bounds, heldout))],
            "random": [_row(0, random_bound, 0.5, True)]}


def test_compare_passes_on_a_valid_non_vacuous_bound():
    c = compare(predict(runs(True)), _measurement())
    assert c.passed, c
    assert c.error == pytest.approx(0.28)


@pytest.mark.parametrize("kwargs,check", [
    ({"true_bounds": (0.28, 0.4)}, None),  # vacuous for one seed
    ({"heldout": (0.11, 0.3)}, "bound_valid_every_seed"),  # bound below the held-out error: invalid
    ({"random_bound": 0.45}, "random_labels_bound_at_least_half"),  # random labels certified below chance
])
def test_compare_fails_on_bad_synthetic_bounds(kwargs, check):
    c = compare(predict(runs(True)), _measurement(**kwargs))
    assert not c.passed
    if check:
        assert c.details[check] is False


def test_compare_fails_without_random_label_runs():
    m = _measurement()
    m["random"] = []
    assert not compare(predict(runs(True)), m).passed


def test_gibbs_errors_zero_noise_is_the_deterministic_error_and_noise_tends_to_chance():
    plan = plan_model(ModelSpec(width=4, depth=1), 3, 2, "sgd")
    g = torch.Generator().manual_seed(0)
    theta = {"W0": torch.randn(3, 4, generator=g), "b0": torch.zeros(1, 4), "W1": torch.randn(4, 2, generator=g),
             "b1": torch.zeros(1, 2)}
    x = torch.randn(500, 3, generator=g)
    y = (x[:, 0] > 0).long()
    zero = {k: torch.zeros_like(v) for k, v in theta.items()}
    from lmech.models.mlp import forward
    stacked = {k: v.unsqueeze(0) for k, v in theta.items()}
    expected = float((forward(plan, stacked, x)[0].argmax(-1) != y).double().mean())
    assert gibbs_errors(plan, theta, zero, 7, [x], [y], g)[0] == pytest.approx(expected, abs=1e-12)
    huge = {k: 1e3 * torch.ones_like(v) for k, v in theta.items()}
    assert abs(gibbs_errors(plan, theta, huge, 200, [x], [y], g)[0] - 0.5) < 0.03  # 100k Bernoulli(1/2)-ish samples


def test_union_bound_spends_delta_over_the_grid():
    one = bound_over_grid([0.1], [300.0], 10_000, 600)[0]
    four = bound_over_grid([0.1] * 4, [300.0] * 4, 10_000, 600)
    assert all(b > one for b in four)  # delta / 4 costs a little
    assert max(four) - one < 0.01


def test_specs_group_into_one_job_per_label_kind_and_fast_is_smaller():
    fast, full = runs(True), runs(False)
    assert len({group_key(s) for s in fast}) == 2
    assert min(s.task.n_train for s in fast) >= 10_000
    work = lambda specs: sum(s.steps * s.task.n_train for s in specs)  # noqa: E731
    assert work(fast) <= work(full)
    assert predict(fast) is not None and predict(full)["draws"] > predict(fast)["draws"]
    assert any(s.task.random_labels for s in fast) and not all(s.task.random_labels for s in fast)


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
    assert math.isfinite(verdict.comparison.error)
