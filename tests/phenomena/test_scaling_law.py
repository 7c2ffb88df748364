import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.scaling_law import EXPONENT_TOLERANCE, PHENOMENON
from lmech.store import Store


def _rf_measurement(prediction, shift=0.0):
    """Exact power laws with the predicted exponents (+ shift on the 'model' exponent)."""
    sizes = np.array([8.0, 16.0, 32.0, 64.0])
    curves = {}
    for (alpha, mode), exponent in prediction["rf"].items():
        e = exponent + (shift if mode == "model" else 0.0)
        loss = 2.0 * sizes**-e
        curves[(alpha, mode)] = {"size": sizes, "loss": loss, "stderr": 0.01 * loss, "exponent": e,
                                 "intercept": np.log(2.0), "gd_over_limit": np.ones(4)}
    return {"rf": curves}


def _synthetic(rf_shift=0.0):
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    return prediction, _rf_measurement(prediction, rf_shift)


def test_exact_power_laws_pass():
    assert PHENOMENON.compare(*_synthetic()).passed


def test_exponent_off_by_0_2_fails():
    comparison = PHENOMENON.compare(*_synthetic(rf_shift=0.2))
    assert not comparison.passed and comparison.error == pytest.approx(0.2)


def test_fast_runs_sit_in_the_asymptotic_regime():
    specs = [s for s in PHENOMENON.runs(True) if s.task.name == "power_law_features"]
    for s in specs:
        small, large = sorted((s.task.n_features, s.task.n_train))
        assert 8 <= small <= 64 and large >= 16 * 64
        assert s.task.latent_dim >= 1000  # M = 1000 at bottleneck 64 (theory docstring)
    assert len({s.seed for s in specs}) >= 16 and all(s.data_seed is None for s in specs)


@pytest.mark.slow
def test_fast_mode_passes_and_a_shifted_prediction_fails(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.to_json()
    specs = PHENOMENON.runs(True)
    prediction = PHENOMENON.predict(specs)
    measurement = PHENOMENON.measure(Store(tmp_path), specs)
    shifted = {"rf": {k: v + 2 * EXPONENT_TOLERANCE for k, v in prediction["rf"].items()}}
    assert not PHENOMENON.compare({**prediction, **shifted}, measurement).passed
