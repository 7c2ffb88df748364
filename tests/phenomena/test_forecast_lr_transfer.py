"""forecast-lr-transfer: compare on synthetic sweeps (pass and a shifted held-out optimum that fails), specs, end to end."""

import math

import numpy as np
import pytest

from lmech.phenomena.forecast_lr_transfer import PHENOMENON, _design, compare
from lmech.spec import group_key


def _measurement(sp_shift=0.0, noise=0.003):
    d = _design(True)
    x = np.asarray(d["log2_lrs"])
    rng = np.random.default_rng(0)
    losses = {}
    for p, exponent in (("sp", -1.0), ("mup", 0.0)):
        losses[p] = {}
        for w in d["proxies"] + [d["target"]]:
            opt = math.log2(2.0**-5 * (w / 8) ** exponent) + (sp_shift if (p == "sp" and w == d["target"]) else 0.0)
            log_l = math.log(0.05) + 0.02 * (x - opt) ** 2  # a flat-ish basin: 2% at one octave
            losses[p][w] = np.exp(log_l[None, :] + noise * rng.standard_normal((d["seeds"], len(x))))
    return {"log2_lrs": x, "losses": losses}


def _prediction():
    d = _design(True)
    return {"proxies": d["proxies"], "target": d["target"], "theory_exponent": {"sp": -1.0, "mup": 0.0}}


def test_synthetic_sweeps_with_the_theory_law_pass():
    c = compare(_prediction(), _measurement())
    assert c.passed, c
    assert abs(c.details["results"]["sp"]["exponent"] + 1.0) < 0.15 and c.details["sp_exponent_interval_excludes_0"]


def test_a_held_out_optimum_two_octaves_away_fails():
    c = compare(_prediction(), _measurement(sp_shift=2.0))  # negative control
    assert not c.passed and c.error > 1.5 and not c.details["sp_within_half_octave"]


def test_specs_group_into_one_ensemble_per_width_and_parameterization():
    fast, full = PHENOMENON.runs(True), PHENOMENON.runs(False)
    d = _design(True)
    assert len({group_key(s) for s in fast}) == 2 * (len(d["proxies"]) + 1)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    assert PHENOMENON.predict(fast)["target"] == 4 * max(d["proxies"])


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known failure, not in the atlas: under SP the optimal lr on this task is a transition in width, not a power law (loss +3.2% > 2%, exponent interval contains 0; module docstring)")
def test_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
