import math

import numpy as np
import pytest

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.attention_vs_recurrence import (
    PHENOMENON,
    crossing_pairs,
    effective_bits,
    information_bound_pairs,
    loglog_slope,
)
from lmech.spec import group_key
from lmech.store import Store

PAIRS = np.array([2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
SIZES = np.array([4.0, 8.0, 16.0])


def _recall(pairs, d50, sharpness=3.0):
    """A logistic-in-log-D recall curve that is exactly 0.5 at d50."""
    return 1 / (1 + (pairs / d50) ** sharpness)


def _measurement(d50s, attention=1.0):
    table = {("attention", 0): (PAIRS[-1:], np.array([attention]))}
    for p, c in zip(SIZES, d50s):
        table[("recurrence", int(p))] = (PAIRS, _recall(PAIRS, c))
    crossings = np.array([crossing_pairs(*table[("recurrence", int(p))]) for p in SIZES])
    return {"table": table, "state_sizes": SIZES, "crossings": crossings, "slope": loglog_slope(SIZES, crossings)}


@pytest.fixture(scope="module")
def prediction():
    return PHENOMENON.predict(PHENOMENON.runs(True))


def test_crossing_is_exact_at_tested_points_and_log_linear_between():
    pairs = np.array([2.0, 4.0, 8.0])
    assert crossing_pairs(pairs, np.array([1.0, 0.5 - 1e-12, 0.1])) == pytest.approx(4.0, rel=1e-9)
    # recall 0.7 at D=2, 0.3 at D=8: halfway in log D is D = 4
    assert crossing_pairs(np.array([2.0, 8.0]), np.array([0.7, 0.3])) == pytest.approx(4.0, rel=1e-12)
    assert math.isnan(crossing_pairs(pairs, np.array([1.0, 0.9, 0.8])))  # never crosses
    assert math.isnan(crossing_pairs(pairs, np.array([0.4, 0.3, 0.2])))  # below already


def test_loglog_slope_recovers_a_power():
    assert loglog_slope(SIZES, 0.75 * SIZES**1.3) == pytest.approx(1.3, abs=1e-12)
    assert math.isnan(loglog_slope(SIZES, np.array([1.0, math.nan, 2.0])))


def test_information_bound_is_linear_in_the_state_up_to_the_log():
    # D = 2 (P b + 1) / log2(V/2 - D) solved by iteration: check the fixed point directly
    d = information_bound_pairs(1, vocab=10_000, bits=4.0)
    assert d == pytest.approx(2 * (4 + 1) / math.log2(5000 - d), rel=1e-9)
    big = information_bound_pairs(64, vocab=10_000, bits=4.0)
    assert big / d == pytest.approx((64 * 4 + 1) / (4 + 1), rel=0.01)  # linear in P b + 1, the log ~ constant


def test_effective_bits_make_the_bound_tight():
    b = effective_bits(8, 3.0)
    assert information_bound_pairs(8, bits=b) == pytest.approx(3.0, rel=1e-6)
    assert math.isnan(effective_bits(8, math.nan))


def test_figure_draws(prediction):
    import matplotlib

    matplotlib.use("Agg")
    m = _measurement(0.5 * SIZES)
    fig = PHENOMENON.figure(prediction, m, PHENOMENON.compare(prediction, m))
    assert len(fig.axes) == 2


def test_proportional_crossings_pass(prediction):
    comparison = PHENOMENON.compare(prediction, _measurement(0.5 * SIZES))
    assert comparison.passed, comparison
    assert comparison.details["slope"] == pytest.approx(1.0, abs=0.02)


def test_crossings_independent_of_state_fail(prediction):
    """Chance-level recall (1/D, crossing at D = 2 for every P) is the negative control: slope 0."""
    comparison = PHENOMENON.compare(prediction, _measurement(np.full(3, 2.5)))
    assert not comparison.passed
    assert comparison.error == pytest.approx(0.6, abs=0.02)


def test_quadratic_crossings_fail(prediction):
    comparison = PHENOMENON.compare(prediction, _measurement(2.5 * (SIZES / 4) ** 2))
    assert not comparison.passed and comparison.details["slope"] > 1.4


def test_weak_attention_fails(prediction):
    comparison = PHENOMENON.compare(prediction, _measurement(0.5 * SIZES, attention=0.9))
    assert not comparison.passed and comparison.error == 0.0
    assert not comparison.details["attention_recalls_095"]


def test_spec_grouping_and_sizes():
    for fast in (True, False):
        specs = PHENOMENON.runs(fast)
        rec = [s for s in specs if s.model.kind == "linear_recurrence"]
        att = [s for s in specs if s.model.kind == "transformer"]
        assert len({s.model.state_size for s in rec}) >= 3
        assert max(s.task.n_pairs for s in att) == max(s.task.n_pairs for s in rec)
        # one job per (model, state size, pairs); seeds share it
        cells = {(s.model.kind, getattr(s.model, "state_size", 0), s.task.n_pairs) for s in specs}
        assert len({group_key(s) for s in specs}) == len(cells)
        # the recurrence gets one training budget, attention at least as many steps (it needs more to form)
        assert len({s.steps for s in rec}) == 1 and min(s.steps for s in att) >= rec[0].steps
        assert all(s.model.mixer == "gated" and s.model.depth >= 1 for s in rec)
        pairs = sorted({s.task.n_pairs for s in rec})
        assert pairs[0] == 1 and all(s.task.seq_len == 4 * s.task.n_pairs for s in specs)
    assert sum(s.steps for s in PHENOMENON.runs(True)) <= sum(s.steps for s in PHENOMENON.runs(False))


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
