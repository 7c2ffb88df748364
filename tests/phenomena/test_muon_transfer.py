"""muon-transfer: compare() on synthetic sweeps with known verdicts, the experiment's shape, and
--fast end to end."""

import numpy as np
import pytest

from lmech.phenomena._lr_transfer import fit_optima
from lmech.phenomena.muon_transfer import PHENOMENON, compare, predict, runs
from lmech.spec import group_key

WIDTHS = np.array([16.0, 32.0, 64.0, 128.0])
GRID = np.arange(-10.0, -3.0)
PREDICTION = predict(runs(True))
MUON_FLAT = np.array([-5.5, -5.85, -6.1, -6.35])  # 0.85 octaves, as measured
ADAMW_DRIFT = np.array([-5.9, -6.5, -7.6, -8.5])


def _measurement(muon_opt, adamw_opt, noise_seed=0):
    rng = np.random.default_rng(noise_seed)
    out = {"widths": WIDTHS, "log2_lrs": GRID}
    for name, optima in (("muon", muon_opt), ("adamw", adamw_opt)):
        curves = np.stack([0.05 * (GRID - o) ** 2 + 0.7 + 1e-3 * rng.standard_normal(len(GRID)) for o in optima])
        log2_opt, edges = fit_optima(GRID, curves)
        out[name] = {"log_loss": curves, "log2_opt": log2_opt, "edge": edges}
    return out


def test_stable_muon_and_drifting_adamw_passes():
    c = compare(PREDICTION, _measurement(MUON_FLAT, ADAMW_DRIFT))
    assert c.passed, c
    assert c.error == pytest.approx(0.85, abs=0.05) and c.details["adamw_drift_octaves"] == pytest.approx(2.6, abs=0.05)


def test_muon_drifting_more_than_an_octave_fails():
    c = compare(PREDICTION, _measurement(np.array([-5.0, -5.6, -6.1, -6.6]), ADAMW_DRIFT))
    assert not c.passed and c.error == pytest.approx(1.6, abs=0.05)


def test_adamw_not_drifting_fails():
    c = compare(PREDICTION, _measurement(MUON_FLAT, np.array([-5.9, -6.3, -6.8, -7.4])))
    assert not c.passed and c.error <= 1.0 and c.details["adamw_drift_octaves"] < 2.0


def test_adamw_drifting_up_fails():
    c = compare(PREDICTION, _measurement(MUON_FLAT, ADAMW_DRIFT[::-1]))
    assert not c.passed and c.details["adamw_drift_octaves"] < 0


def test_edge_optima():
    c = compare(PREDICTION, _measurement(np.array([-5.5, -5.5, -5.5, -4.0]), ADAMW_DRIFT))
    assert not c.passed and c.details["muon_edges"] == [128]
    c = compare(PREDICTION, _measurement(MUON_FLAT, np.array([-4.0, -6.5, -7.6, -8.5])))
    assert c.passed and c.details["adamw_edges"][0] == "high"  # only understates the fall
    c = compare(PREDICTION, _measurement(MUON_FLAT, np.array([-5.9, -6.5, -7.6, -4.0])))
    assert not c.passed and c.details["adamw_bad_edges"] == [128]


def test_prediction_shifted_past_the_tolerance_fails():
    measurement = _measurement(MUON_FLAT, ADAMW_DRIFT)
    c = compare(dict(PREDICTION, lr_exponent={"muon": -1.0, "adamw": -1.0}), measurement)  # Muon claimed 1/H
    assert not c.passed and c.error > 1.0


def test_fast_spec_same_model_and_grid_for_both_optimizers():
    fast, full = runs(True), runs(False)
    widths = sorted({s.model.width for s in fast})
    assert widths[-1] / widths[0] >= 8
    assert len({group_key(s) for s in fast}) == 2 * len(widths)  # one ensemble per (optimizer, width)
    grids = {name: sorted({s.optimizer.lr for s in fast if s.optimizer.name == name}) for name in ("muon", "adamw")}
    assert grids["muon"] == grids["adamw"]
    models = {name: {s.model for s in fast if s.optimizer.name == name} for name in ("muon", "adamw")}
    assert models["muon"] == models["adamw"]
    assert all(s.model.parameterization == "sp" and s.optimizer.weight_decay == 0.0 for s in fast)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
