import numpy as np
import pytest

from lmech.phenomena._scaling_forecast import BATCH, forecast_from_cells, forecast_specs
from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.scaling_law import EXPONENT_TOLERANCE, PHENOMENON
from lmech.store import Store
from lmech.train.schedule import observation_steps


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


def _forecast_measurement(held_out_factor=1.0):
    """Cells of the fast design from an exact coupled law; the widest runs' losses times held_out_factor."""
    specs = forecast_specs(PHENOMENON.runs(True))
    widths = sorted({s.model.width for s in specs})
    steps = [s for s in observation_steps("log", 24, specs[0].steps) if s > 0]
    dim = specs[0].task.input_dim
    n, d = (np.array(v, float) for v in zip(*[(2 * dim * w, BATCH * s) for w in widths for s in steps]))
    loss = 0.3 + ((20.0 / n**0.9) ** (1 / 3) + (5e4 / d**1.7) ** (1 / 3)) ** 3
    loss = np.where(n == n.max(), loss * held_out_factor, loss)
    return forecast_from_cells(n, d, loss, 1e-3 * loss, bootstrap=10)


def _synthetic(rf_shift=0.0, held_out_factor=1.0):
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    return prediction, {**_rf_measurement(prediction, rf_shift),
                        "forecast": _forecast_measurement(held_out_factor)}


@pytest.fixture(scope="module")
def exact():
    return _synthetic()


def test_exact_power_laws_pass(exact):
    comparison = PHENOMENON.compare(*exact)
    assert comparison.passed
    assert max(comparison.details["forecast"]["forecast_relative_error_largest"]) < 0.005


def test_exponent_off_by_0_2_fails(exact):
    prediction, measurement = exact
    shifted = {**measurement, **_rf_measurement(prediction, 0.2)}
    comparison = PHENOMENON.compare(prediction, shifted)
    assert not comparison.passed and comparison.error == pytest.approx(0.2 / EXPONENT_TOLERANCE)


def test_held_out_runs_8_percent_off_the_law_fail():
    comparison = PHENOMENON.compare(*_synthetic(held_out_factor=1.08))
    assert not comparison.passed
    assert comparison.error == pytest.approx(0.08 / 0.05, rel=0.1)


def test_held_out_runs_3_percent_off_pass_the_error_but_fail_coverage():
    """Within 5%, but the interval of a near-exact fit (0.1% noise) cannot reach a 3% miss."""
    comparison = PHENOMENON.compare(*_synthetic(held_out_factor=1.03))
    assert comparison.error < 1.0 and not comparison.passed
    assert not any(comparison.details["forecast"]["interval_covers_largest"])


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
    forecast = measurement["forecast"]
    off = {**forecast, "loss": np.where(forecast["held"], 1.1 * forecast["loss"], forecast["loss"])}
    assert not PHENOMENON.compare(prediction, {**measurement, "forecast": off}).passed


def test_forecast_design_holds_out_the_widest_at_the_largest_data():
    specs = forecast_specs(PHENOMENON.runs(True))
    widths = sorted({s.model.width for s in specs})
    assert len(widths) == 5 and widths[-1] == 2 * widths[-2]
    assert all(s.data_seed is None and s.optimizer.batch_size == BATCH for s in specs)
    assert all(s.task.n_train == BATCH * s.steps for s in specs)  # one pass: every example fresh
    assert len({s.seed for s in specs}) >= 8
