"""forecast-max-lr: the analysis on synthetic grids and rows (pass and fail), the specs, and end to end."""

import math

import pytest

from lmech.observables import REGISTRY
from lmech.phenomena.forecast_max_lr import PHENOMENON, MODELS, compare, divergence_lr, predict, runs


def test_divergence_bracket_from_a_grid():
    lrs = [0.1, 0.2, 0.4, 0.8, 1.6]
    initial = [1.0] * 5
    assert divergence_lr(lrs, initial, [0.5, 0.4, 0.9, 1.2, math.inf]) == pytest.approx((0.4, 0.8, math.sqrt(0.32)))
    assert divergence_lr(lrs, initial, [0.5] * 5) == (1.6, math.inf, math.inf)  # every rate trained
    assert all(math.isnan(v) for v in divergence_lr(lrs, initial, [2.0] * 5))  # even the smallest diverged


def _rows(gd_ratios, momentum_ratio=1.2, adam_ratio=50.0):
    rows = []
    for (activation, width, depth), ratio in zip(MODELS, gd_ratios):
        high = 6.0 if activation == "relu" else 2.0
        rows.append({"optimizer": "sgd", "model": f"{activation} {width}x{depth}", "forecast": 1.0, "low": 1.0,
                     "high": high, "divergence_lr": ratio, "ratio": ratio, "inside": 1.0 <= ratio <= high})
        rows.append({"optimizer": "momentum", "model": f"{activation} {width}x{depth}", "forecast": 1.0, "low": 0.5,
                     "high": 2.0, "divergence_lr": momentum_ratio, "ratio": momentum_ratio, "inside": True})
        rows.append({"optimizer": "adam", "model": f"{activation} {width}x{depth}", "forecast": 1.0, "low": 1.0,
                     "high": math.inf, "divergence_lr": adam_ratio, "ratio": adam_ratio, "inside": True})
    return rows


def test_compare_passes_with_one_miss_and_fails_with_two():
    prediction = predict(runs(True))
    ok = compare(prediction, {"rows": _rows([1.3, 1.6, 2.5, 3.0, 1.5])})  # gelu 3.0 > 2: one outside
    assert ok.passed and ok.error == 1.0 and ok.tolerance == 1.0
    bad = compare(prediction, {"rows": _rows([1.3, 2.5, 2.5, 3.0, 0.5])})  # tanh 64x2, gelu and relu 256 outside
    assert not bad.passed and bad.error == 3.0


def test_compare_fails_when_a_grid_does_not_bracket():
    rows = _rows([1.3, 1.6, 2.5, 1.5, 1.5])
    rows[0] = {**rows[0], "divergence_lr": math.inf, "ratio": math.inf, "inside": False}
    result = compare(predict(runs(True)), {"rows": rows})
    assert not result.passed and result.details["every_gd_grid_brackets_divergence"] is False


def test_specs_follow_the_contract():
    fast, full = runs(True), runs(False)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    assert {(s.model.activation, s.model.width, s.model.depth) for s in fast} == set(MODELS)
    for spec in fast + full:
        assert set(spec.observe) <= set(REGISTRY) and spec.loss == "mse" and spec.optimizer.batch_size is None
    assert predict(fast) is not None


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
