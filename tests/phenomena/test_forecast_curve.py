"""forecast-curve: compare on curves drawn from the law (pass), with the annealing drop removed (fails), specs, end to end."""

import numpy as np
import pytest

from lmech.forecast.curve import CurveLaw
from lmech.phenomena.forecast_curve import PHENOMENON, compare

TRUE = CurveLaw(l0=1.5, a=2.0, alpha=0.6, c=0.004, lam=0.99)


def _curves(prediction, broken=None, every=8):
    out = {}
    for key, etas in prediction["schedules"].items():
        steps = np.arange(0, len(etas) + 1, every)
        law = CurveLaw(1.5, 2.0, 0.6, 0.0, 0.99) if key == broken else TRUE
        out[key] = (steps, law.predict(etas, steps), 16)
    return {"curves": out}


def test_curves_from_the_law_pass_and_the_blind_baseline_misses():
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    c = compare(prediction, _curves(prediction))
    assert c.passed, c
    assert c.error < 1e-3 and c.details["blind_worst_error"] > 0.05


def test_a_held_out_curve_without_its_annealing_drop_fails():
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    c = compare(prediction, _curves(prediction, broken=prediction["held_out"][0]))  # negative control
    assert not c.passed and c.error > 0.02


def test_specs_four_schedules_as_four_ensembles():
    fast, full = PHENOMENON.runs(True), PHENOMENON.runs(False)
    prediction = PHENOMENON.predict(fast)
    assert set(prediction["schedules"]) == set(prediction["fitting"] + prediction["held_out"])
    assert {s.optimizer.schedule for s in fast} == {"constant", "cosine", "wsd"}
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)


@pytest.mark.slow
def test_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
