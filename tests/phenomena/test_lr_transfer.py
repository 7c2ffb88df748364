"""_lr_transfer: the optimum fit against parabolas, edge handling, spread/drift/edge summaries, and
the store-reading curves against a fake store with known losses."""

import math

import numpy as np
import pytest

from lmech.models.transformer import TransformerSpec
from lmech.phenomena._lr_transfer import (
    drift,
    final_loss,
    fit_optima,
    log_loss_curves,
    misleading_edges,
    optimal_log2_lr,
    run_log_loss,
    transfer_checks,
    trend_free_spread,
)
from lmech.spec import OptimizerSpec, RunSpec
from lmech.tasks.markov_language import MarkovLanguageSpec

GRID = np.arange(-12.0, -1.0)
WIDTHS = np.array([16.0, 32.0, 64.0, 128.0])


def test_parabola_vertex_is_exact():
    for vertex in (-7.3, -5.0, -4.51, -10.99):
        got, edge = optimal_log2_lr(GRID, 0.7 * (GRID - vertex) ** 2 + 1.0)
        assert edge is None and abs(got - vertex) < 1e-9  # exact for a parabola (float64)


def test_edges_divergence_and_concave_triples():
    assert optimal_log2_lr(GRID, GRID) == (-12.0, "low")
    assert optimal_log2_lr(GRID, -GRID) == (-2.0, "high")
    curve = (GRID + 6.0) ** 2
    curve[GRID > -6] = np.inf
    assert optimal_log2_lr(GRID, curve) == (-6.0, None)
    got = optimal_log2_lr(GRID, np.full_like(GRID, np.inf))
    assert math.isnan(got[0]) and got[1] == "none"
    flat_bottom = np.abs(GRID + 6.0)  # a V: the triple through the minimum is convex, vertex at -6
    assert optimal_log2_lr(GRID, flat_bottom)[0] == pytest.approx(-6.0, abs=1e-9)


def test_fit_optima_row_by_row():
    vertices = np.array([-5.2, -6.4, -7.1, -8.9])
    opt, edges = fit_optima(GRID, np.stack([(GRID - v) ** 2 for v in vertices]))
    assert np.allclose(opt, vertices, atol=1e-9) and edges == [None] * 4


def test_final_loss_averages_the_last_fifth():
    assert final_loss([0, 50, 80, 90, 100], [9.0, 9.0, 1.0, 2.0, 3.0], 100) == 2.0
    assert np.isnan(final_loss([0, 10], [1.0, 1.0], 100))


def test_spread_removes_the_trend_and_drift_is_the_fall():
    falling = np.array([-5.0, -6.0, -7.0, -8.0])  # exactly lr ∝ 1/H
    assert trend_free_spread(WIDTHS, falling, -1.0) == pytest.approx(0.0, abs=1e-12)
    assert trend_free_spread(WIDTHS, falling, 0.0) == pytest.approx(3.0, abs=1e-12)
    assert drift(falling) == pytest.approx(3.0) and drift(falling[::-1]) == pytest.approx(-3.0)


def test_only_edges_that_could_overstate_a_fall_are_misleading():
    assert misleading_edges(WIDTHS, ["high", None, None, "low"]) == []
    assert misleading_edges(WIDTHS, ["low", None, "high", None]) == [16, 64]
    assert misleading_edges(WIDTHS, [None, None, None, "none"]) == [128]


class _FakeStore:
    """Loss series keyed by run id: a constant loss; status diverged where the loss is inf."""

    def __init__(self, losses: dict[str, float]):
        self.losses = losses

    def summary(self, run_id):
        return {"status": "diverged" if math.isinf(self.losses[run_id]) else "finished"}

    def series(self, run_id, name):
        assert name == "loss/train"
        return [0, 80, 100], [100.0, self.losses[run_id], self.losses[run_id]]


def _spec(width, log2_lr, seed, name="adam"):
    task = MarkovLanguageSpec(vocab_size=4, seq_len=4, n_train=4, n_test=4)
    return RunSpec(task=task, model=TransformerSpec(width=width, heads=1, context=4), steps=100, seed=seed,
                   optimizer=OptimizerSpec(name=name, lr=2.0**log2_lr))


def test_curves_are_seed_means_of_log_loss_and_divergence_is_inf():
    specs, losses = [], {}
    for name in ("adam", "adamw"):
        for width in (8, 16):
            for x in (-3, -2, -1):
                for seed in (0, 1):
                    spec = _spec(width, x, seed, name)
                    specs.append(spec)
                    losses[spec.id] = math.inf if (name, width, x, seed) == ("adamw", 16, -1, 1) else \
                        math.exp(abs(x + 2) + seed + width / 8)
    store = _FakeStore(losses)
    widths, grid, curves = log_loss_curves(store, specs, lambda s: s.optimizer.name)
    assert widths.tolist() == [8.0, 16.0] and grid.tolist() == [-3.0, -2.0, -1.0]
    expected = np.array([[abs(x + 2) + 0.5 + w / 8 for x in (-3, -2, -1)] for w in (8, 16)])
    assert np.allclose(curves["adam"], expected, atol=1e-9)
    assert np.isinf(curves["adamw"][1, 2]) and np.allclose(curves["adamw"][0], expected[0], atol=1e-9)
    assert run_log_loss(store, specs[0]) == pytest.approx(math.log(losses[specs[0].id]))


def test_transfer_checks_on_known_optima():
    flat = {"log2_opt": np.array([-6.0, -6.2, -5.9, -6.1]), "edge": [None, None, "high", None]}
    falling = {"log2_opt": -4.0 - np.log2(WIDTHS / WIDTHS[0]), "edge": ["high", None, None, "low"]}
    checks = transfer_checks(WIDTHS, flat, 0.0, falling, -1.0)
    assert checks["spread"] == pytest.approx(0.3) and checks["drift"] == pytest.approx(3.0)
    assert checks["predicted_drift"] == pytest.approx(3.0)  # 1/H over 16..128: three octaves
    assert checks["flat_edges"] == [64] and checks["bad_edges"] == []  # the extreme edges only understate
    rising = {"log2_opt": falling["log2_opt"][::-1], "edge": [None, "low", None, None]}
    checks = transfer_checks(WIDTHS, flat, 0.0, rising, -1.0)
    assert checks["drift"] == pytest.approx(-3.0) and checks["bad_edges"] == [32]  # wrong way, and a hiding edge
    assert transfer_checks(WIDTHS, flat, 0.0, falling, 0.0)["drift"] == 0.0  # no direction predicted
