"""heavy-tails: the alpha series reader, the Spearman interval, the verdict on synthetic sweeps
(pass and fail), the specs, end to end (which measures, and may fail: the claim is contested)."""

import math

import numpy as np
import pytest

from lmech.phenomena.heavy_tails import PHENOMENON, compare, mean_alpha_series, predict, runs, spearman_interval
from lmech.spec import group_key


def test_mean_alpha_series_skips_unfitted_layers():
    metrics = {"step": [0, 0, 0, 10, 10, 10, 10],
               "name": ["weight_spectrum/layers/W1/alpha", "weight_spectrum/layers/W2/alpha",
                        "weight_spectrum/layers/W0/alpha", "weight_spectrum/layers/W1/alpha",
                        "weight_spectrum/layers/W2/alpha", "weight_spectrum/layers/W1/xmin", "loss/train"],
               "value": [5.0, 7.0, math.nan, 3.0, 4.0, 99.0, 0.1]}
    assert mean_alpha_series(metrics) == ([0, 10], [6.0, 3.5])


def test_spearman_interval_brackets_a_strong_and_a_null_relation():
    rng = np.random.default_rng(0)
    x = np.arange(12.0)
    rho, lo, hi = spearman_interval(x, -x + 0.5 * rng.standard_normal(12), replicates=500, level=0.95, seed=0)
    assert rho < -0.9 and hi < 0
    rho, lo, hi = spearman_interval(x, np.random.default_rng(10).standard_normal(12), replicates=500, level=0.95, seed=0)
    assert lo < 0 < hi


def _sweep(final_alpha, accuracy, start=6.0):
    return {"runs": [{"lr": 0.05 * (i + 1), "batch": 16, "seed": 0, "steps": [0, 100, 200],
                      "alpha": [start, (start + a) / 2, a], "test_accuracy": acc, "train_accuracy": 1.0}
                     for i, (a, acc) in enumerate(zip(final_alpha, accuracy))]}


def test_compare_passes_when_alpha_falls_and_tracks_accuracy():
    alpha = np.linspace(5.0, 3.0, 10)
    c = compare(predict(runs(True)), _sweep(alpha, np.linspace(0.6, 0.8, 10)))
    assert c.passed, c
    assert c.error < 0


@pytest.mark.parametrize("alpha,accuracy,start,check", [
    (np.linspace(5.0, 3.0, 10), np.linspace(0.8, 0.6, 10), 6.0, "correlation_negative"),  # positive correlation
    (np.linspace(5.0, 3.0, 10), np.linspace(0.6, 0.8, 10), 4.0, "alpha_falls_every_run"),  # alpha rises in some runs
    (np.linspace(5.0, 3.0, 10), np.random.default_rng(1).permutation(np.linspace(0.6, 0.8, 10)), 6.0,
     "interval_excludes_zero"),  # no relation
])
def test_compare_fails_on_synthetic_counterexamples(alpha, accuracy, start, check):
    c = compare(predict(runs(True)), _sweep(alpha, accuracy, start))
    assert not c.passed and c.details[check] is False


def test_specs_one_job_per_batch_and_fast_is_smaller():
    fast, full = runs(True), runs(False)
    assert len({group_key(s) for s in fast}) == len({s.optimizer.batch_size for s in fast}) == 1
    work = lambda specs: sum(s.steps * s.optimizer.batch_size for s in specs)  # noqa: E731
    assert work(fast) <= work(full)
    assert all("weight_spectrum" in s.observe for s in fast)
    assert predict(fast) is not None


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="contested claim, measured FAIL: alpha rose in 1 of 12 runs (lr 0.07 seed 1, "
                   "6.45 -> 8.22); the rank correlation held (-0.67 [-0.90, -0.18]); see the module docstring")
def test_end_to_end_fast(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
