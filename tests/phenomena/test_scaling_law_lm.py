import numpy as np
import pytest

from lmech.models.family import build_model
from lmech.phenomena._scaling_forecast import forecast_from_cells
from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.scaling_law_lm import PHENOMENON, VOCAB, parameter_count, tokens_seen
from lmech.spec import group_key
from lmech.store import Store


def _cells(held_out_factor=1.0, flat=False):
    """The fast design's (N, D) cells with losses from an exact coupled law (widest x held_out_factor)."""
    specs = PHENOMENON.runs(True)
    keys = sorted({(parameter_count(s.model.width), tokens_seen(s)) for s in specs})
    n, d = (np.array(v, float) for v in zip(*keys))
    loss = 2.6 + ((30.0 / n**0.6) ** (1 / 2) + (400.0 / d**0.5) ** (1 / 2)) ** 2
    if flat:
        loss = 3.0 + 0.01 * np.log(n * d) / np.log(n * d).max()  # a grid on which nothing is learned
    loss = np.where(n == n.max(), loss * held_out_factor, loss)
    return forecast_from_cells(n, d, loss, 1e-3 * loss, bootstrap=10)


@pytest.fixture(scope="module")
def prediction():
    return PHENOMENON.predict(PHENOMENON.runs(True))


def test_exact_coupled_law_passes(prediction):
    comparison = PHENOMENON.compare(prediction, _cells())
    assert comparison.passed, comparison
    assert comparison.error < 0.005  # a noise-free law is forecast to 0.5%
    assert comparison.details["grid_spans_3x_tolerance"] and comparison.details["interval_covers"]
    assert "additive_relative_error_largest" in comparison.details


def test_held_out_runs_8_percent_off_fail(prediction):
    comparison = PHENOMENON.compare(prediction, _cells(held_out_factor=1.08))
    assert not comparison.passed
    assert comparison.error == pytest.approx(0.08, rel=0.15)


def test_flat_grid_fails_the_spread_check(prediction):
    """A grid whose losses span under 3 tolerances is no evidence, however good the forecast."""
    measurement = _cells(flat=True)
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed
    if measurement["error"] is None:  # the fit may also refuse a flat grid; either way it fails
        assert not comparison.details["grid_spans_3x_tolerance"]


def test_parameter_count_matches_the_built_model():
    for spec in PHENOMENON.runs(True)[:: 16]:
        module = build_model(spec.model, (spec.task.seq_len,), spec.task.vocab_size, spec.task.vocab_size, 0)
        assert sum(p.numel() for p in module.parameters()) == parameter_count(spec.model.width)


def test_every_point_is_its_own_cosine_run():
    for fast in (True, False):
        specs = PHENOMENON.runs(fast)
        assert all(s.optimizer.schedule == "cosine" for s in specs)
        points = {(s.model.width, s.steps) for s in specs}
        jobs = {group_key(s) for s in specs}
        assert len(jobs) == len(points)  # seeds share a job; each (width, steps) is its own run
        assert all(s.observe["loss"].every == s.steps for s in specs)  # only the end of each run is read
        assert len({s.model.width for s in specs}) >= 4 and len({s.steps for s in specs}) >= 4
    fast, full = PHENOMENON.runs(True), PHENOMENON.runs(False)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)


def test_predict_gives_the_entropy_rate(prediction):
    assert 0 < prediction["entropy_rate"] < np.log(VOCAB)


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
