"""mup-transfer-transformer: compare() on synthetic sweeps and coordinate checks with known verdicts,
the coordinate-slope helper against power laws, the experiment's shape, and --fast end to end."""

import numpy as np
import pytest

from lmech.phenomena._lr_transfer import fit_optima
from lmech.phenomena.mup_transfer_transformer import (
    PHENOMENON,
    compare,
    coordinate_fields,
    coordinate_slopes,
    predict,
    runs,
)
from lmech.spec import group_key

WIDTHS = np.array([16.0, 32.0, 64.0, 128.0])
GRID = np.arange(-10.0, -3.0)
PREDICTION = predict(runs(True))
FLAT = np.array([-5.7, -5.9, -6.0, -6.0])
SP_DRIFT = np.array([-5.7, -6.3, -7.4, -8.5])


def _coord(slope: float) -> dict[str, np.ndarray]:
    roles = coordinate_fields(1)
    return {f: (1.3 if role != "output" else 0.6) * (WIDTHS / 16) ** (slope if role == "hidden" else 0.0)
            for f, role in roles.items()}


def _measurement(mup_opt, sp_opt, mup_slope=0.05, sp_slope=1.0, noise_seed=0):
    """Parabolic log-loss curves with the given optima, through the real fit, and power-law coordinates."""
    rng = np.random.default_rng(noise_seed)
    out = {"widths": WIDTHS, "log2_lrs": GRID, "coord_roles": coordinate_fields(1)}
    for p, optima, slope in (("mup", mup_opt, mup_slope), ("sp", sp_opt, sp_slope)):
        curves = np.stack([0.05 * (GRID - o) ** 2 + 0.7 + 1e-3 * rng.standard_normal(len(GRID)) for o in optima])
        log2_opt, edges = fit_optima(GRID, curves)
        out[p] = {"log_loss": curves, "log2_opt": log2_opt, "edge": edges, "coord": _coord(slope)}
    return out


def test_coordinate_slopes_recover_power_laws():
    slopes = coordinate_slopes(WIDTHS, {"a": 3.0 * WIDTHS**0.7, "b": np.full(4, 2.0), "c": np.array([1, 2, 0, 4.0])})
    assert slopes["a"] == pytest.approx(0.7, abs=1e-3) and slopes["b"] == pytest.approx(0.0, abs=1e-3)
    assert np.isnan(slopes["c"])  # a non-positive RMS has no log


def test_coordinate_fields_judge_the_hidden_outputs_of_every_block():
    roles = coordinate_fields(2)
    assert [f for f, r in roles.items() if r == "hidden"] == [
        "blocks.0.attention.out", "blocks.0.mlp.down", "blocks.1.attention.out", "blocks.1.mlp.down"]
    assert roles["output"] == "output" and roles["blocks.1"] == "stream"


def test_transfer_like_the_paper_passes():
    c = compare(PREDICTION, _measurement(FLAT, SP_DRIFT))
    assert c.passed, c
    assert c.error == pytest.approx(0.3, abs=0.05)
    assert c.details["sp_drift_octaves"] == pytest.approx(2.8, abs=0.05)


def test_mup_optimum_drifting_4x_fails():
    c = compare(PREDICTION, _measurement(np.array([-5.0, -5.7, -6.3, -7.0]), SP_DRIFT))
    assert not c.passed and c.error == pytest.approx(2.0, abs=0.05)


def test_sp_drifting_only_2x_fails():
    c = compare(PREDICTION, _measurement(FLAT, np.array([-5.7, -6.0, -6.4, -6.7])))
    assert not c.passed and c.error <= 1.0 and c.details["sp_drift_octaves"] < 2.0


def test_sp_drifting_the_wrong_way_fails():
    c = compare(PREDICTION, _measurement(FLAT, SP_DRIFT[::-1]))
    assert not c.passed and c.details["sp_drift_octaves"] < 0


def test_edge_optima():
    c = compare(PREDICTION, _measurement(np.array([-6.0, -6.0, -6.0, -4.0]), SP_DRIFT))
    assert not c.passed and c.details["mup_edges"] == [128]
    # SP at the low edge at the largest width only understates the fall: accepted
    c = compare(PREDICTION, _measurement(FLAT, np.array([-5.7, -6.3, -7.4, -10.0])))
    assert c.passed and c.details["sp_edges"][-1] == "low"
    # SP at the low edge at the smallest width could overstate it: refused
    c = compare(PREDICTION, _measurement(FLAT, np.array([-10.0, -6.3, -7.4, -8.5])))
    assert not c.passed and c.details["sp_bad_edges"] == [16]


def test_coordinate_check_failures():
    assert not compare(PREDICTION, _measurement(FLAT, SP_DRIFT, mup_slope=0.5)).passed
    assert not compare(PREDICTION, _measurement(FLAT, SP_DRIFT, sp_slope=0.2)).passed


def test_prediction_shifted_past_the_tolerance_fails():
    measurement = _measurement(FLAT, SP_DRIFT)
    claimed_drift = dict(PREDICTION, lr_exponent={"sp": -1.0, "mup": -0.5})  # muP claimed to fall 2.8x
    c = compare(claimed_drift, measurement)
    assert not c.passed and c.error > 1.0
    assert not compare(dict(PREDICTION, lr_exponent={"sp": 1.0, "mup": 0.0}), measurement).passed


def test_fast_spec_groups_and_widths():
    fast, full = runs(True), runs(False)
    widths = sorted({s.model.width for s in fast})
    assert widths[-1] / widths[0] >= 8
    full_widths = sorted({s.model.width for s in full})
    assert full_widths[-1] / full_widths[0] >= 16
    # one sweep job and one coordinate-check job per (parameterization, width)
    assert len({group_key(s) for s in fast}) == 2 * 2 * len(widths)
    assert {s.model.parameterization for s in fast} == {"sp", "mup"}
    assert all(s.model.base_width == 16 and s.optimizer.name == "adam" for s in fast)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    assert PHENOMENON.predict(fast)["lr_exponent"] == {"sp": -1.0, "mup": 0.0}


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
