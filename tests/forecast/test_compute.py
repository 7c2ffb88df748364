"""lmech.forecast.compute on synthetic IsoFLOP ladders from a Chinchilla-form loss with a known optimum."""

import math

import numpy as np
import pytest

from lmech.errors import InputError, NotIdentifiableError
from lmech.forecast.compute import (check_compute, fit_compute_optimal, forecast_compute, isoflop_vertex,
                                    ladder_steps)

# L = E + A N^-a + B D^-b with D = C / (6N): the exact optimum N_opt = G (C/6)^(b/(a+b)), G = (aA/(bB))^(1/(a+b))
E, A, B, ALPHA, BETA = 1.0, 40.0, 60.0, 0.5, 0.5


def loss(n, c):
    return E + A * n ** -ALPHA + B * (c / (6 * n)) ** -BETA


def n_opt(c):
    return (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA)) * (c / 6) ** (BETA / (ALPHA + BETA))


def ladder(c, seeds=3, noise=0.0, seed=0):
    sizes = n_opt(c) * np.geomspace(1 / 8, 8, 9)
    rng = np.random.default_rng(seed)
    return sizes, loss(sizes, c)[None, :] * (1 + noise * rng.standard_normal((seeds, len(sizes))))


def test_vertex_of_an_exact_parabola_and_edges():
    n = np.geomspace(10, 1000, 7)
    x = np.log(n)
    n_star, l_star, edge = isoflop_vertex(n, 2 + (x - math.log(80)) ** 2)
    assert n_star == pytest.approx(80, rel=1e-9) and l_star == pytest.approx(2, abs=1e-9) and edge is None
    assert isoflop_vertex(n, 2 + (x - math.log(5000)) ** 2)[2] == "high"
    assert isoflop_vertex(n, -(x - 4) ** 2)[2] in ("low", "high")  # a hill: its lowest rung is an end
    assert isoflop_vertex(n[:3], np.array([2.0, 1.0, 1.9]))[2] is None


def test_forecast_at_a_held_out_budget_recovers_the_known_optimum():
    budgets = [1e8, 2e8, 4e8, 8e8]
    ladders = [ladder(c, noise=0.002, seed=i) for i, c in enumerate(budgets)]
    fit = fit_compute_optimal(budgets, [s for s, _ in ladders], [l for _, l in ladders])
    assert fit.exponent == pytest.approx(0.5, abs=0.03)  # b / (a + b)
    forecast = forecast_compute(fit, 3.2e9)
    truth = n_opt(3.2e9)
    assert max(forecast.forecast / truth, truth / forecast.forecast) < 1.1
    assert forecast.interval[0] <= truth <= forecast.interval[1]
    sizes, losses = ladder(3.2e9)
    check = check_compute(forecast, sizes, losses)
    assert check["factor_error"] < 1.1 and check["inside_interval"] and check["excess_loss"] < 0.01
    # negative control: a forecast 3x too large fails the factor-1.5 rule and is outside the interval
    wrong = forecast.__class__(**{**forecast.__dict__, "forecast": 3 * forecast.forecast,
                                  "interval": (2.5 * forecast.forecast, 3.5 * forecast.forecast)})
    bad = check_compute(wrong, sizes, losses)
    assert bad["factor_error"] > 1.5 and not bad["inside_interval"]


def test_bad_budgets_and_unbracketed_ladders_are_refused():
    with pytest.raises(InputError, match="positive"):
        ladder_steps(0.0, 100, 32)
    sizes = np.geomspace(10, 100, 5)
    far = [(sizes, loss(sizes, 1e12)[None, :]), (sizes, loss(sizes, 2e12)[None, :])]  # optimum far above the ladder
    with pytest.raises(NotIdentifiableError, match="bracket"):
        fit_compute_optimal([1e12, 2e12], [s for s, _ in far], [l for _, l in far])
    assert ladder_steps(6 * 100 * 32 * 10, 100, 32) == 10
    budgets = [1e8, 2e8]
    ladders = [ladder(c) for c in budgets]
    fit = fit_compute_optimal(budgets, [s for s, _ in ladders], [l for _, l in ladders])
    with pytest.raises(InputError, match="positive"):
        forecast_compute(fit, -1.0)


def test_prediction_interval_covers_the_held_out_vertex_in_about_95_percent_of_draws():
    """Synthetic truth: Chinchilla-form ladders (9 rungs, 4 seeds, 0.5% seed noise, each ladder offset at
    random by up to e^±0.2 around the true optimum) at C1..C4 and a held-out ladder at C5 = 4 C4; the
    measured C5 vertex must fall inside the 95% prediction interval in roughly 95% of 200 draws."""
    budgets, held = [1e8, 2e8, 4e8, 8e8], 3.2e9
    inside = []
    for draw in range(200):
        rng = np.random.default_rng(draw)
        ladders = []
        for c in budgets + [held]:
            sizes = n_opt(c) * np.geomspace(1 / 8, 8, 9) * math.exp(rng.uniform(-0.2, 0.2))
            ladders.append((sizes, loss(sizes, c)[None, :] * (1 + 0.005 * rng.standard_normal((4, 9)))))
        fit = fit_compute_optimal(budgets, [s for s, _ in ladders[:4]], [l for _, l in ladders[:4]], n_boot=0)
        inside.append(check_compute(forecast_compute(fit, held), *ladders[4])["inside_interval"])
    assert 0.88 <= np.mean(inside) <= 0.985, np.mean(inside)
