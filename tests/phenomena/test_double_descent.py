import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.double_descent import PHENOMENON, TOLERANCE
from lmech.store import Store


def _synthetic(factor=1.0):
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    risk = prediction["risk"] * factor
    return prediction, {"gamma": prediction["gamma"], "risk": risk, "stderr": 0.01 * risk}


def test_theory_curve_passes():
    assert PHENOMENON.compare(*_synthetic()).passed


def test_risk_off_by_more_than_tolerance_fails():
    comparison = PHENOMENON.compare(*_synthetic(1 + 1.5 * TOLERANCE))
    assert not comparison.passed and comparison.error > TOLERANCE


def test_no_peak_at_one_fails():
    prediction, measurement = _synthetic()
    measurement["risk"] = np.full_like(measurement["risk"], prediction["risk"].mean())
    assert not PHENOMENON.compare(prediction, measurement).passed


def test_steps_follow_the_condition_number():
    specs = PHENOMENON.runs(True)
    steps = {round(s.task.input_dim / s.task.n_train, 3): s.steps for s in specs}
    assert steps[0.8] > steps[0.5] > steps[0.1] and steps[1.25] > steps[2.0]


@pytest.mark.slow
def test_fast_mode_passes_and_a_shifted_prediction_fails(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True, workers=2)
    assert verdict.passed, verdict.to_json()
    specs = PHENOMENON.runs(True)
    prediction = PHENOMENON.predict(specs)
    prediction["risk"] = prediction["risk"] * (1 + 2 * TOLERANCE)
    assert not PHENOMENON.compare(prediction, PHENOMENON.measure(Store(tmp_path), specs)).passed
