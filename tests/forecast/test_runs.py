"""lmech.forecast._runs.DataRunner: members differ by seed (also for a factory that seeds torch itself),
a member in an ensemble equals the member alone, a diverged member is +inf."""

from pathlib import Path

import numpy as np
import pytest

from lmech.forecast._runs import DataRunner
from lmech.spec import OptimizerSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def _runner(batch=16):
    from examples.forecast_model import regression

    x, y = regression(n=64)
    return DataRunner("examples.forecast_model:mlp", x, y, "mse", OptimizerSpec(name="sgd", batch_size=batch))


def test_members_differ_by_seed_and_match_their_solo_runs():
    runner = _runner(batch=64)  # full batch: no minibatch draws shared between runs
    both = runner.curves(8, [0.05, 0.05], [0, 1], 10, "constant", 5)
    assert not np.allclose(both.losses[0], both.losses[1])  # the factory's own seed keyword is set per member
    alone = runner.curves(8, [0.05], [1], 10, "constant", 5)
    np.testing.assert_allclose(both.losses[1], alone.losses[0], rtol=1e-5)  # float32 rounding


def test_a_diverged_member_is_inf_and_the_other_goes_on():
    curves = _runner().curves(8, [0.01, 1e6], [0, 0], 10, "constant", 5)
    assert np.all(np.isfinite(curves.losses[0])) and np.isinf(curves.losses[1, -1])
