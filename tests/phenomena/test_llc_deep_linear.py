import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.llc_deep_linear import PHENOMENON, TOLERANCE, r_hat, runs, split_half_gap
from lmech.store import Store


def _synthetic(factor=1.0, gap=0.01, rhat=1.01, loss=1e-9):
    prediction = PHENOMENON.predict(runs(True))
    measurement = {k: {"estimate": v["lambda"] * factor, "stderr": 0.1, "gap": gap, "r_hat": rhat,
                       "init_loss": loss, "running": np.full(10, v["lambda"])} for k, v in prediction.items()}
    return prediction, measurement


def test_theory_values_pass():
    comparison = PHENOMENON.compare(*_synthetic())
    assert comparison.passed and comparison.error < 1e-12


def test_estimates_off_by_more_than_tolerance_fail():
    comparison = PHENOMENON.compare(*_synthetic(1 + 1.5 * TOLERANCE))
    assert not comparison.passed and comparison.error > TOLERANCE


def test_the_regular_value_d_over_2_fails():
    """Negative control: a regular model's learning coefficient (d/2) is far from Aoyagi's lambda."""
    prediction, measurement = _synthetic()
    for k in measurement:
        measurement[k]["estimate"] = prediction[k]["regular"]
    assert not PHENOMENON.compare(prediction, measurement).passed


def test_unconverged_chains_or_untrained_networks_fail():
    assert not PHENOMENON.compare(*_synthetic(gap=0.2)).passed
    assert not PHENOMENON.compare(*_synthetic(rhat=1.5)).passed
    assert not PHENOMENON.compare(*_synthetic(loss=0.1)).passed


def test_convergence_diagnostics_on_synthetic_chains():
    rng = np.random.default_rng(0)
    stationary = 1.0 + 0.01 * rng.standard_normal((4, 4000))
    assert r_hat(stationary, 1000) < 1.01
    assert split_half_gap(stationary, 1000, 1.0, 0.0) < 0.01
    drifting = stationary + np.linspace(0, 1, 4000)  # a trend: the halves differ by about half the mean
    assert split_half_gap(drifting, 1000, 1.0, 0.0) > 0.2
    separated = stationary + np.arange(4)[:, None] * 0.5  # chains stuck at different levels
    assert r_hat(separated, 1000) > 1.5


def test_specs_cover_several_ranks_and_full_mode_adds_depth():
    fast, full = runs(True), runs(False)
    assert sorted({len(s.task.singular_values) for s in fast}) == [1, 2, 4]
    assert {s.model.depth for s in full} == {1, 2} and len(full) > len(fast)
    assert len({PHENOMENON.predict(fast)[k]["lambda"] for k in PHENOMENON.predict(fast)}) == 3


@pytest.mark.slow
def test_fast_mode_passes_end_to_end(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
