"""mup-transfer: the optimum fit, compare() on synthetic sweeps with known verdicts, and --fast end to end."""

import numpy as np
import pytest

from lmech.phenomena.mup_transfer import (
    PHENOMENON,
    compare,
    final_loss,
    optimal_log2_lr,
    predict,
    runs,
)

WIDTHS = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
GRID = np.arange(-12.0, -1.0)


def test_parabola_recovers_the_vertex_of_a_parabola():
    for vertex in (-7.3, -5.0, -4.51):
        got, edge = optimal_log2_lr(GRID, 0.7 * (GRID - vertex) ** 2 + 1.0)
        assert edge is None
        assert abs(got - vertex) < 1e-9  # exact for a parabola (float64)


def test_edges_are_clamped_and_flagged_and_divergence_handled():
    assert optimal_log2_lr(GRID, GRID) == (-12.0, "low")
    assert optimal_log2_lr(GRID, -GRID) == (-2.0, "high")
    curve = (GRID + 6.0) ** 2
    curve[GRID > -6] = np.inf  # diverged right of the minimum: no sub-grid refinement
    assert optimal_log2_lr(GRID, curve) == (-6.0, None)
    assert optimal_log2_lr(GRID, np.full_like(GRID, np.inf))[1] == "none"


def test_final_loss_averages_the_last_fifth():
    assert final_loss([0, 50, 80, 90, 100], [9.0, 9.0, 1.0, 2.0, 3.0], 100) == 2.0
    assert np.isnan(final_loss([0, 10], [1.0, 1.0], 100))


def _measurement(mup_opt, sp_opt, mup_slope=0.05, sp_slope=0.8, noise_seed=0):
    """A synthetic sweep: parabolic log-loss curves with the given optima, through the real fit."""
    rng = np.random.default_rng(noise_seed)
    out = {"widths": WIDTHS, "log2_lrs": GRID}
    for p, optima, slope in (("mup", mup_opt, mup_slope), ("sp", sp_opt, sp_slope)):
        curves = np.stack([0.3 * (GRID - o) ** 2 - 3.0 + 0.01 * rng.standard_normal(len(GRID)) for o in optima])
        fits = [optimal_log2_lr(GRID, c) for c in curves]
        coord = np.stack([1.4 * WIDTHS ** 0.0, 1.4 * (WIDTHS / 16) ** slope, 0.5 * WIDTHS ** 0.0], axis=1)
        out[p] = {"log_loss": curves, "log2_opt": np.array([f[0] for f in fits]),
                  "edge": [f[1] for f in fits], "coord": coord}
    return out


PREDICTION = predict(runs(True))
FLAT = np.array([-5.1, -5.0, -4.9, -4.7, -4.8])
SP_DRIFT = np.array([-5.1, -6.1, -7.3, -7.9, -9.4])


def test_transfer_like_the_paper_passes():
    c = compare(PREDICTION, _measurement(FLAT, SP_DRIFT))
    assert c.passed, c
    assert c.error == pytest.approx(0.4, abs=0.05)  # spread of FLAT, through the fit
    assert c.details["sp_drift_octaves"] == pytest.approx(4.3, abs=0.05)


def test_mup_optimum_drifting_4x_fails():
    drifting = np.array([-5.0, -5.5, -6.0, -6.5, -7.0])  # two octaves = 4x
    c = compare(PREDICTION, _measurement(drifting, SP_DRIFT))
    assert not c.passed and c.error == pytest.approx(2.0, abs=0.05)


def test_sp_drifting_only_2x_fails():
    c = compare(PREDICTION, _measurement(FLAT, np.array([-5.0, -5.3, -5.5, -5.8, -6.0])))
    assert not c.passed and c.error <= 1.0


def test_sp_drifting_the_wrong_way_fails():
    c = compare(PREDICTION, _measurement(FLAT, SP_DRIFT[::-1]))
    assert not c.passed and c.details["sp_drift_octaves"] < 0


def test_mup_edge_optimum_fails():
    c = compare(PREDICTION, _measurement(np.array([-5.0, -5.0, -5.0, -5.0, -1.0]), SP_DRIFT))
    assert not c.passed and c.details["mup_edges"] == [256]


def test_coordinate_check_failures():
    assert not compare(PREDICTION, _measurement(FLAT, SP_DRIFT, mup_slope=0.6)).passed
    assert not compare(PREDICTION, _measurement(FLAT, SP_DRIFT, sp_slope=0.1)).passed


def test_prediction_shifted_past_the_tolerance_fails():
    measurement = _measurement(FLAT, SP_DRIFT)
    shifted = dict(PREDICTION, lr_exponent={"sp": -1.0, "mup": -0.5})  # muP claimed to drift 4x
    c = compare(shifted, measurement)
    assert not c.passed and c.error > 1.0
    reversed_sp = dict(PREDICTION, lr_exponent={"sp": 1.0, "mup": 0.0})
    assert not compare(reversed_sp, measurement).passed


def test_fast_spec_is_an_ensemble_per_width_and_parameterization():
    from lmech.spec import group_key

    specs = runs(True)
    groups = {group_key(s) for s in specs}
    assert len(groups) == 2 * len({s.model.width for s in specs})
    assert max(s.model.width for s in specs) / min(s.model.width for s in specs) >= 16


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    from lmech.phenomena import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
