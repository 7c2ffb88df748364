import math

import pytest

from lmech.train import log_spaced_steps, lr_factor, observation_steps


def test_log_spaced_steps_include_ends_and_are_sorted():
    steps = log_spaced_steps(1000, 20)
    assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert 10 <= len(steps) <= 21


def test_every_n():
    assert observation_steps(25, 0, 100) == [0, 25, 50, 75, 100]
    assert observation_steps(30, 0, 100) == [0, 30, 60, 90, 100]


@pytest.mark.parametrize("step,expected", [(0, 1.0), (50, 0.5), (100, 0.0)])
def test_cosine(step, expected):
    assert lr_factor("cosine", step, 100) == pytest.approx(expected, abs=1e-12)


def test_warmup_then_cosine():
    assert lr_factor("warmup_cosine", 0, 110, 10) == pytest.approx(0.1)
    assert lr_factor("warmup_cosine", 9, 110, 10) == pytest.approx(1.0)
    assert lr_factor("warmup_cosine", 60, 110, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_wsd_is_flat_then_decays_linearly_to_zero():
    # 100 steps: decay over the last 20 (WSD_DECAY_FRACTION), factor (100 - step) / 20
    assert [lr_factor("wsd", s, 100) for s in (0, 50, 80)] == [1.0, 1.0, 1.0]
    assert lr_factor("wsd", 90, 100) == pytest.approx(0.5, abs=1e-12)
    assert lr_factor("wsd", 99, 100) == pytest.approx(0.05, abs=1e-12)
    assert lr_factor("wsd", 100, 100) == 0.0
    assert lr_factor("wsd", 0, 100, 10) == pytest.approx(0.1)  # warmup first


def test_wsd_spec_accepted():
    from lmech.spec import OptimizerSpec

    assert OptimizerSpec(schedule="wsd").schedule == "wsd"
