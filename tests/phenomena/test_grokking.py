"""grokking: step detection and compare() on synthetic step tables with known verdicts; --fast end to end."""

import math

import numpy as np
import pytest

from lmech.phenomena.grokking import PHENOMENON, compare, first_step_at, grokking_steps, predict, runs

INF = math.inf


def test_first_step_at_threshold_and_never():
    assert first_step_at([0, 20, 40, 60], [0.1, 0.5, 0.99, 1.0]) == 40
    assert first_step_at([0, 20], [0.1, 0.98]) == INF
    assert grokking_steps(([0, 20, 40], [0.2, 1.0, 1.0]), ([0, 20, 40], [0.0, 0.0, 0.995])) == (20.0, 40.0)


def _measurement(gen, mem=None):
    gen = np.asarray(gen, dtype=float)
    return {"init_scales": [1.0, 1.5, 2.0], "weight_decays": [3.0, 4.0],
            "memorization": np.full_like(gen, 40.0) if mem is None else np.asarray(mem, dtype=float),
            "generalization": gen, "curves": {}, "budget": 1000}


PREDICTION = predict(runs(True))
GOOD = [[400, 280], [490, 350], [720, 620]]  # the fast mode's measured table (seed medians)
GOOD_MEM = [[40, 40], [60, 90], [250, 330]]  # its memorization steps
GOOD_WITH_NEVER = [[400, 280], [490, 350], [INF, 620]]  # the laziest start misses the budget at the smaller wd


def test_grokking_like_the_papers_passes():
    c = compare(PREDICTION, _measurement(GOOD, GOOD_MEM))
    assert c.passed, c
    assert c.error == pytest.approx(490 / 60)
    assert c.details["never_generalized_settings"] == 0


def test_never_generalizing_at_the_laziest_start_is_consistent():
    c = compare(PREDICTION, _measurement(GOOD_WITH_NEVER))
    assert c.passed, c
    assert c.details["never_generalized_settings"] == 1


def test_never_generalizing_against_the_ordering_fails():
    """+inf at the larger weight decay contradicts "shrinks with weight decay" (seen at init 2, wd 5)."""
    c = compare(PREDICTION, _measurement([[400, 280], [490, 350], [720, INF]]))
    assert not c.passed and not c.details["weight_decay_ordering_holds"]


def test_fast_mode_trains_on_well_under_half_the_pairs():
    specs = runs(True)
    assert all(s.task.train_fraction <= 0.3 for s in specs)
    assert all(s.optimizer.weight_decay > 0 for s in specs)


def test_delay_ratio_two_fails():
    c = compare(PREDICTION, _measurement([[60, 50], [80, 70], [100, 90]]))
    assert not c.passed and c.error == pytest.approx(2.0)


def test_reversed_init_ordering_fails():
    c = compare(PREDICTION, _measurement([[1500, 900], [1000, 700], [800, 600]]))
    assert not c.passed and not c.details["init_scale_ordering_holds"]


def test_reversed_weight_decay_ordering_fails():
    c = compare(PREDICTION, _measurement([[500, 900], [900, 1400], [1200, 1800]]))
    assert not c.passed and not c.details["weight_decay_ordering_holds"]


def test_nothing_generalizes_fails():
    c = compare(PREDICTION, _measurement([[INF, INF], [INF, INF], [INF, INF]]))
    assert not c.passed and not c.details["baseline_ok"]


def test_prediction_shifted_past_the_tolerance_fails():
    measurement = _measurement(GOOD, GOOD_MEM)
    assert compare(PREDICTION, measurement).passed
    assert not compare(dict(PREDICTION, min_delay_ratio=9.0), measurement).passed  # measured 8.17
    assert not compare(dict(PREDICTION, init_scale_order=-1), measurement).passed
    assert not compare(dict(PREDICTION, weight_decay_order=1), measurement).passed


def test_fast_spec_is_one_ensemble():
    from lmech.spec import group_key

    specs = runs(True)
    assert len({group_key(s) for s in specs}) == 1
    assert len({s.model.init_scale for s in specs}) >= 3 and len({s.optimizer.weight_decay for s in specs}) >= 2


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    from lmech.phenomena import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
