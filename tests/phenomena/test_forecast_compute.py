"""forecast-compute: compare on synthetic Chinchilla-form ladders (pass; a shifted C5 ladder fails), specs, end to end."""

import numpy as np
import pytest

from lmech.phenomena.forecast_compute import PHENOMENON, compare, ladder_widths, _parameters

E, A, B = 1.0, 40.0, 60.0  # L = E + A N^-1/2 + B D^-1/2, D = C / (6N): N_opt ∝ C^(1/2)


def _ladders(prediction, shift=1.0, seeds=3):
    rng = np.random.default_rng(0)
    out = {}
    for c in prediction["fitting"] + [prediction["held_out"]]:
        n_opt = (A / B) * (c / 6) ** 0.5
        sizes = n_opt * np.geomspace(1 / 6, 6, 8)
        scale = shift if c == prediction["held_out"] else 1.0
        loss = E + A * (sizes / scale) ** -0.5 + B * (c / (6 * sizes / scale)) ** -0.5
        out[c] = (sizes, loss[None, :] * (1 + 0.0005 * rng.standard_normal((seeds, len(sizes)))))
    return {"ladders": out}


def test_synthetic_ladders_pass_and_a_shifted_held_out_ladder_fails():
    prediction = PHENOMENON.predict(PHENOMENON.runs(True))
    good = compare(prediction, _ladders(prediction))
    assert good.passed, good
    assert good.error < 1.1
    bad = compare(prediction, _ladders(prediction, shift=3.0))  # negative control: the C5 optimum 3x larger
    assert not bad.passed and bad.error > 1.5


def test_specs_budgets_and_ladders():
    fast, full = PHENOMENON.runs(True), PHENOMENON.runs(False)
    prediction = PHENOMENON.predict(fast)
    assert prediction["held_out"] >= 4 * prediction["fitting"][-1] and len(prediction["fitting"]) == 4
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    for c in prediction["fitting"] + [prediction["held_out"]]:
        widths = ladder_widths(c)
        assert len(widths) >= 5
        for w in widths:  # C = 6 N D within rounding of the steps
            steps = [s.steps for s in fast if s.model.width == w and abs(6 * _parameters(w) * 64 * s.steps / c - 1) < 0.1]
            assert steps, (c, w)
    full_prediction = PHENOMENON.predict(full)  # seven sqrt(2)-spaced fitting budgets, the same held-out one
    assert len(full_prediction["fitting"]) == 7 and full_prediction["held_out"] == prediction["held_out"]
    assert np.allclose(np.diff(np.log2(full_prediction["fitting"])), 0.5)
    for c in full_prediction["fitting"]:
        assert len(ladder_widths(c)) >= 5


@pytest.mark.slow
def test_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
