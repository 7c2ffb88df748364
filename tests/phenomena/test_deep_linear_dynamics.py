import numpy as np

from lmech.phenomena.deep_linear_dynamics import PHENOMENON, TOLERANCE
from lmech.phenomena.atlas import run_phenomenon
from lmech.store import Store


def _synthetic(shift_steps: float = 0.0, noise: float = 0.0):
    specs = PHENOMENON.runs(True)
    prediction = PHENOMENON.predict(specs)
    rng = np.random.default_rng(0)
    steps = prediction["steps"]
    curves = []
    for _ in range(4):
        shifted = np.stack([np.interp(steps - shift_steps, steps, prediction["strength"][:, r])
                            for r in range(prediction["strength"].shape[1])], axis=1)
        curves.append(shifted * (1 + noise * rng.standard_normal(shifted.shape)))
    return prediction, {"steps": steps, "strength": np.stack(curves)}


def test_exact_curves_pass_and_late_curves_fail():
    prediction, measurement = _synthetic()
    assert PHENOMENON.compare(prediction, measurement).passed
    late = PHENOMENON.compare(*_synthetic(shift_steps=120))
    assert not late.passed and late.error > TOLERANCE


def test_unordered_modes_fail():
    prediction, measurement = _synthetic()
    measurement["strength"] = measurement["strength"][:, :, ::-1] * 0 + measurement["strength"][:, :, :1]
    assert not PHENOMENON.compare(prediction, measurement).passed


def test_fast_mode_passes_and_a_shifted_prediction_fails(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.to_json()
    specs = PHENOMENON.runs(True)
    prediction = PHENOMENON.predict(specs)
    measurement = PHENOMENON.measure(Store(tmp_path), specs)
    prediction["strength"] = prediction["strength"] * (1 + 2 * TOLERANCE)
    assert not PHENOMENON.compare(prediction, measurement).passed
