"""lmech.forecast.lr_transfer and _power_fit on synthetic sweeps with a known optimum law."""

import math

import numpy as np
import pytest

from lmech.errors import NotIdentifiableError
from lmech.forecast._power_fit import fit_log_linear
from lmech.forecast.lr_transfer import (check_lr_transfer, fit_lr_transfer, forecast_lr_transfer, loss_at_log2_lr,
                                        optimal_log2_lr)

GRID = np.arange(-14, -2.9, 0.5)  # half-octave grid


def synthetic_sweeps(widths, exponent, seeds=3, noise=0.0, c=2.0**-3, curvature=0.3, seed=0):
    """losses (W, R, G): log L = curvature (log2 lr - log2 lr*(H))^2 with lr* = c H^exponent (+ noise)."""
    rng = np.random.default_rng(seed)
    optima = np.log2(c * np.asarray(widths, dtype=float) ** exponent)
    log_l = curvature * (GRID[None, None, :] - optima[:, None, None]) ** 2
    return np.exp(log_l + noise * rng.standard_normal((len(widths), seeds, len(GRID))))


def test_parabola_vertex_is_exact_on_a_parabola_and_flags_edges():
    x = np.arange(-5.0, 0.5, 0.5)
    assert optimal_log2_lr(x, (x + 2.3) ** 2)[0] == pytest.approx(-2.3, abs=1e-9)  # exact: the data are a parabola
    assert optimal_log2_lr(x, (x + 9) ** 2) == (x[0], "low")
    assert optimal_log2_lr(x, np.full_like(x, np.inf))[1] == "none"


def test_power_fit_recovers_slope_and_interval_covers():
    x = np.array([16.0, 32, 64, 128])
    fit = fit_log_linear(x, 3.0 * x**-0.8, boot_y=3.0 * x**-0.8 * np.exp(0.01 * np.random.default_rng(0).standard_normal((50, 4))))
    assert fit.slope == pytest.approx(-0.8, abs=1e-9)  # noise-free points: exact slope
    y, low, high = fit.predict(512.0)
    assert y == pytest.approx(3.0 * 512**-0.8, rel=1e-9) and low < y < high


def test_power_fit_refuses_without_any_spread():
    with pytest.raises(NotIdentifiableError):
        fit_log_linear([16.0, 32.0], [1.0, 0.5])  # two points, no bootstrap: no interval


@pytest.mark.parametrize("exponent,parameterization", [(-1.0, "sp"), (0.0, "mup")])
def test_forecast_at_4x_recovers_the_known_optimum(exponent, parameterization):
    widths = [16, 32, 64]
    fit = fit_lr_transfer(widths, GRID, synthetic_sweeps(widths, exponent, noise=0.01, c=2.0**-6), parameterization)
    forecast = forecast_lr_transfer(fit, 256)
    truth = 2.0**-6 * 256.0**exponent
    assert abs(math.log2(forecast.forecast / truth)) < 0.1  # a tenth of an octave on nearly noise-free sweeps
    assert forecast.interval[0] <= truth <= forecast.interval[1]
    if parameterization == "sp":
        low, high = fit.exponent_interval
        assert fit.exponent == pytest.approx(-1.0, abs=0.05) and high < 0  # resolved from zero


def test_check_scores_the_held_out_sweep_and_fails_a_wrong_forecast():
    widths = [16, 32, 64]
    sweeps = synthetic_sweeps([16, 32, 64, 256], -1.0)
    fit = fit_lr_transfer(widths, GRID, sweeps[:3], "sp")
    good = check_lr_transfer(forecast_lr_transfer(fit, 256), GRID, sweeps[3])
    assert good["error_octaves"] < 0.1 and good["excess_loss"] < 0.01
    # negative control: the muP (flat) rule applied to SP data misses the held-out optimum by 2 octaves
    flat = fit_lr_transfer(widths, GRID, sweeps[:3], "mup")
    bad = check_lr_transfer(forecast_lr_transfer(flat, 256), GRID, sweeps[3])
    assert bad["error_octaves"] > 1.5 and bad["excess_loss"] > 0.02


def test_loss_interpolation_between_grid_points():
    losses = np.exp(np.array([[0.0, 1.0, 2.0]]))
    assert loss_at_log2_lr([0.0, 1.0, 2.0], losses, 0.5) == pytest.approx(math.exp(0.5), rel=1e-12)
    assert loss_at_log2_lr([0.0, 1.0, 2.0], losses, 3.0) == math.inf


def test_too_small_sweeps_are_refused():
    with pytest.raises(NotIdentifiableError, match="at least 3"):
        fit_lr_transfer([16, 32], GRID[:2], np.ones((2, 2, 2)), "sp")
    with pytest.raises(NotIdentifiableError, match="proxy widths"):
        fit_lr_transfer([16], GRID, synthetic_sweeps([16], -1.0), "sp")
    edge = synthetic_sweeps([16, 32], -1.0, c=2.0**-13)  # optimum below the grid
    with pytest.raises(NotIdentifiableError, match="bracket"):
        fit_lr_transfer([16, 32], GRID, edge, "sp")
