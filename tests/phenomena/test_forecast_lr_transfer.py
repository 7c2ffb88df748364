"""forecast-lr-transfer: compare on synthetic sweeps (the theory's laws pass; a shifted held-out optimum,
a flat SP law and a forecast on the steep side of the held-out bowl fail), measure on a fake store,
specs, end to end."""

import math

import numpy as np
import pytest

from lmech.phenomena.forecast_lr_transfer import OPTIMIZERS, PHENOMENON, _design, compare, mean_log_loss, measure
from lmech.spec import group_key


def _measurement(sp_shift=0.0, sp_exponent=-1.0, noise=0.003):
    d = _design(True)
    rng = np.random.default_rng(0)
    grids, losses = {}, {}
    for p, exponent in (("sp", sp_exponent), ("mup", 0.0)):
        x = np.asarray(d["log2_lrs"][p])
        grids[p], losses[p] = x, {}
        for w in d["proxies"] + [d["target"]]:
            opt = -3.5 + exponent * math.log2(w / 32) + (sp_shift if (p == "sp" and w == d["target"]) else 0.0)
            log_l = math.log(0.02) + 0.02 * (x - opt) ** 2  # a flat-ish basin: 2% at one octave
            losses[p][w] = np.exp(log_l[None, :] + noise * rng.standard_normal((d["seeds"][p], len(x))))
    return {"log2_lrs": grids, "losses": losses}


def _prediction():
    d = _design(True)
    return {"proxies": d["proxies"], "target": d["target"], "theory_exponent": {"sp": -1.0, "mup": 0.0}}


def test_synthetic_sweeps_with_the_theory_law_pass():
    c = compare(_prediction(), _measurement())
    assert c.passed, c
    assert abs(c.details["results"]["sp"]["exponent"] + 1.0) < 0.1 and c.details["sp_exponent_interval_excludes_0"]
    assert c.error < 0.2 and c.details["results"]["mup"]["excess_loss"] < 0.01


def test_a_held_out_optimum_two_octaves_away_fails():
    c = compare(_prediction(), _measurement(sp_shift=-2.0))  # negative control
    assert not c.passed and c.error > 1.5 and not c.details["sp_within_half_octave"]


def test_a_flat_sp_law_fails_the_exponent_check():
    c = compare(_prediction(), _measurement(sp_exponent=0.0, noise=0.01))  # SP as flat as muP: trivial fit
    assert not c.passed and not c.details["sp_exponent_interval_excludes_0"]


def test_a_forecast_on_the_steep_side_of_the_bowl_fails_the_loss_check():
    m = _measurement()
    d = _design(True)
    x = m["log2_lrs"]["mup"]
    # held-out optimum near 2^-3.2 (within half an octave of the flat forecast 2^-3.5), but the loss
    # rises 6% in the half octave below it: within the octave tolerance, outside the 2% loss tolerance
    log_l = math.log(0.02) + np.where(x < -3.0, 0.24, 1.05) * (x + 3.0) ** 2
    m["losses"]["mup"][d["target"]] = np.repeat(np.exp(log_l)[None, :], d["seeds"]["mup"], axis=0)
    c = compare(_prediction(), m)  # negative control
    r = c.details["results"]["mup"]
    assert c.details["mup_within_half_octave"] and r["excess_loss"] > 0.05 and not c.details["mup_loss_within_2pct"]
    assert not c.passed


def test_mean_log_loss_counts_a_diverged_seed_as_inf():
    losses = np.array([[1.0, math.e, np.inf], [1.0, math.e, 2.0]])
    np.testing.assert_allclose(mean_log_loss(losses), [0.0, 1.0, np.inf])


def test_measure_reads_the_tail_of_the_test_loss_and_flags_divergence():
    specs = [s for s in PHENOMENON.runs(True) if s.model.width == 32 and s.seed < 2]
    diverged = {specs[0].id}

    class FakeStore:
        def series(self, run_id, metric):
            assert metric == "loss/test"
            return [0, 80, 90, 100], [9.0, 1.0, 2.0, 3.0]

        def summary(self, run_id):
            return {"status": "diverged" if run_id in diverged else "finished"}

    m = measure(FakeStore(), specs)
    d = _design(True)
    for p in ("sp", "mup"):
        np.testing.assert_allclose(m["log2_lrs"][p], d["log2_lrs"][p])
        assert m["losses"][p][32].shape == (2, len(d["log2_lrs"][p]))
    first = specs[0]
    row, col = first.seed, d["log2_lrs"][first.model.parameterization].index(math.log2(first.optimizer.lr))
    assert math.isinf(m["losses"][first.model.parameterization][32][row, col])
    assert np.sum(np.isinf(np.concatenate([m["losses"][p][32].ravel() for p in m["losses"]]))) == 1
    assert np.allclose(np.where(np.isinf(m["losses"]["mup"][32]), 2.0, m["losses"]["mup"][32]), 2.0)


def test_specs_group_into_one_ensemble_per_width_and_parameterization():
    fast, full = PHENOMENON.runs(True), PHENOMENON.runs(False)
    d = _design(True)
    assert len({group_key(s) for s in fast}) == 2 * (len(d["proxies"]) + 1)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    assert {s.optimizer.name for s in fast if s.model.parameterization == "sp"} == {OPTIMIZERS["sp"]} == {"sgd"}
    assert {s.optimizer.name for s in fast if s.model.parameterization == "mup"} == {"adam"}
    prediction = PHENOMENON.predict(fast)
    assert prediction["target"] == 4 * max(d["proxies"]) and prediction["theory_exponent"] == {"sp": -1.0, "mup": 0.0}
    for grid in d["log2_lrs"].values():
        assert np.allclose(np.diff(grid), 0.5)  # a half-octave grid


@pytest.mark.slow
def test_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
