"""forecast-batch: the analysis on synthetic best rates (the law passes, linear scaling fails), the specs, end to end."""

import numpy as np
import pytest

from lmech.forecast.batch import optimal_lr
from lmech.observables import REGISTRY
from lmech.phenomena.forecast_batch import PHENOMENON, compare, predict, runs, score


def _measurement(best, batches=(2, 4, 8, 16, 32, 64, 128, 256), b_noise=25.0, edge=False):
    return {"batch": list(batches), "best_lr": list(best), "at_edge": [edge] * len(batches), "b_noise": b_noise,
            "b_simple": 30.0, "eps_max_theory": 0.3}


def test_law_shaped_rates_pass():
    batches = np.array([2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
    scatter = np.array([1.05, 0.95, 1.0, 1.1, 0.9, 1.1, 0.92, 1.08])
    best = optimal_lr(batches, 0.28, 25.0) * scatter
    result = compare(predict(runs(True)), _measurement(best))
    assert result.passed and result.error < 1.2
    assert result.details["linear_scaling_misses_largest_batch_by_2x"] is True


def test_linearly_scaling_rates_fail():
    batches = np.array([2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
    best = 0.01 * batches  # no saturation: the law with B_noise = 25 forecasts far too low
    result = compare(predict(runs(True)), _measurement(best))
    assert not result.passed and result.error > 1.5
    assert result.details["linear_scaling_misses_largest_batch_by_2x"] is False


def test_a_best_rate_at_the_grid_edge_fails():
    batches = np.array([2, 4, 8, 16, 32, 64], dtype=float)
    best = optimal_lr(batches, 0.28, 25.0)
    result = compare(predict(runs(True)), _measurement(best, batches, edge=True))
    assert not result.passed and result.details["no_best_lr_at_grid_edge"] is False


def test_score_recovers_the_law_exactly():
    batches = np.array([2.0, 4, 8, 64, 128, 256])
    out = score(batches, optimal_lr(batches, 0.5, 40.0), 40.0)
    assert out["fit"].eps_max == pytest.approx(0.5, rel=1e-12)
    assert np.allclose(out["factors"], 1.0)


def test_specs_follow_the_contract():
    fast, full = runs(True), runs(False)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    fast_batches = sorted({s.optimizer.batch_size for s in fast})
    assert fast_batches[-1] >= 32 * fast_batches[0]
    assert all(set(s.observe) <= set(REGISTRY) and s.steps == 1 and s.seed == 0 for s in fast + full)
    assert len({s.order_seed for s in fast}) == 32
    assert predict(fast)["scored_batches"] == fast_batches[-3:]


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
