import math

import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.critical_batch import PHENOMENON, TOLERANCE
from lmech.store import Store

S_MIN, B_CRIT = 6.0, 120.0


def _synthetic(b_simple=B_CRIT, noise=0.0):
    batches = np.array([4.0, 8, 16, 32, 64, 128])
    steps = S_MIN * (1 + B_CRIT / batches) * (1 + noise * np.array([1, -1, 1, -1, 1, -1]))
    measurement = {"batch": batches, "steps": steps, "best_lr": [0.1] * 6, "lr_at_grid_edge": [False] * 6,
                   "b_simple": b_simple, "b_simple_runs": [b_simple], "b_simple_trace": []}
    return PHENOMENON.predict(PHENOMENON.runs(True)), measurement


def test_exact_hyperbola_with_matching_noise_scale_passes():
    comparison = PHENOMENON.compare(*_synthetic(noise=0.05))
    assert comparison.passed
    assert abs(comparison.details["b_crit"] - B_CRIT) / B_CRIT < 0.15  # 5% multiplicative noise on steps


def test_noise_scale_off_by_more_than_the_factor_fails():
    for b_simple in (B_CRIT * 1.2 * TOLERANCE, B_CRIT / (1.2 * TOLERANCE)):
        comparison = PHENOMENON.compare(*_synthetic(b_simple=b_simple))
        assert not comparison.passed and comparison.error > TOLERANCE


def test_shifted_prediction_fails():
    prediction, measurement = _synthetic()
    prediction["factor"] = 1.2 * TOLERANCE
    assert not PHENOMENON.compare(prediction, measurement).passed


def test_a_batch_that_never_reaches_the_target_fails():
    prediction, measurement = _synthetic()
    measurement["steps"][0] = math.inf
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and "never reached" in comparison.measurement


def test_sweep_spans_32x_with_an_lr_grid_per_batch():
    specs = PHENOMENON.runs(True)
    batches = {s.optimizer.batch_size for s in specs}
    assert max(batches) / min(batches) >= 32
    per_batch = {}
    for s in specs:
        per_batch.setdefault(s.optimizer.batch_size, set()).add(s.optimizer.lr)
    assert all(len(lrs) >= 5 for lrs in per_batch.values())


@pytest.mark.slow
def test_fast_mode_passes_and_a_shifted_prediction_fails(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True, workers=2)
    assert verdict.passed, verdict.to_json()
    specs = PHENOMENON.runs(True)
    prediction = PHENOMENON.predict(specs)
    prediction["factor"] = 4 * TOLERANCE
    assert not PHENOMENON.compare(prediction, PHENOMENON.measure(Store(tmp_path), specs)).passed
