import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.benign_overfitting import PHENOMENON, TOLERANCE, excess_risk
from lmech.store import Store


def _synthetic(factor=1.0):
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    measurement = {k: {"n": v["n"], "risk": v["risk"] * factor, "stderr": 0.01 * v["risk"]}
                   for k, v in prediction.items()}
    return prediction, measurement


def test_the_deterministic_equivalent_itself_passes():
    comparison = PHENOMENON.compare(*_synthetic())
    assert comparison.passed and comparison.error < 1e-12


def test_risk_off_by_more_than_tolerance_fails():
    comparison = PHENOMENON.compare(*_synthetic(1 + 1.5 * TOLERANCE))
    assert not comparison.passed and comparison.error > TOLERANCE


def test_a_benign_spectrum_whose_risk_does_not_fall_fails():
    """Negative control: the benign curve replaced by a flat one at its first value (error within
    tolerance at small n is irrelevant: the trend check must fail)."""
    prediction, measurement = _synthetic()
    measurement["benign"]["risk"] = np.full_like(measurement["benign"]["risk"], measurement["benign"]["risk"][0])
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and not comparison.details["benign_risk_falls"]


def test_a_non_benign_spectrum_whose_risk_vanishes_fails():
    prediction, measurement = _synthetic()
    measurement["not_benign"]["risk"] = measurement["not_benign"]["risk"] * np.geomspace(1, 0.1, 5)
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and not comparison.details["not_benign_risk_stays"]


def test_specs_draw_their_own_data_and_grow_the_tail():
    specs = PHENOMENON.runs(True)
    assert all(s.data_seed is None and s.steps == 0 for s in specs)
    dims = {(s.task.n_train, s.task.input_dim) for s in specs}
    assert (256, 4096) in dims and (256, 512) in dims
    assert len(PHENOMENON.runs(False)) > len(specs)


def test_excess_risk_of_the_true_coefficients_on_noise_free_data_is_zero():
    rng = np.random.default_rng(0)
    lam = np.linspace(2.0, 0.1, 30)
    beta = rng.standard_normal(30)
    x = rng.standard_normal((10, 30)) * np.sqrt(lam)
    # min-norm recovers only the row-space part; the excess risk is that of the projection residual.
    resid = beta - np.linalg.pinv(x) @ (x @ beta)
    assert excess_risk(x, x @ beta, lam, beta) == pytest.approx(np.sum(lam * resid**2), rel=1e-9)


@pytest.mark.slow
def test_fast_mode_passes_end_to_end(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
