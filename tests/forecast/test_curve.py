"""lmech.forecast.curve: the Tissue et al. 2024 areas by hand, the fit on synthetic curves, the blind baseline."""

import numpy as np
import pytest

from lmech.errors import InputError, NotIdentifiableError
from lmech.forecast.curve import (CurveLaw, fit_blind_power_law, fit_curve_law, forecast_curve, lr_schedule,
                                  max_relative_error, schedule_areas)


def test_areas_by_hand():
    # etas 1, 1, 0.5, 0.5 with lam 0.5: drops 0, 0, 0.5, 0 -> m = 0, 0, 0.5, 0.25; S2 = 0, 0, 0.5, 0.75
    s1, s2 = schedule_areas([1.0, 1.0, 0.5, 0.5], 0.5)
    assert s1.tolist() == [0.0, 1.0, 2.0, 2.5, 3.0]
    assert s2 == pytest.approx([0.0, 0.0, 0.0, 0.5, 0.75], abs=1e-15)
    assert not schedule_areas(np.ones(10), 0.9)[1].any()  # constant schedule: no annealing area
    with pytest.raises(InputError):
        schedule_areas([1.0, -1.0], 0.9)


def _synthetic(law, schedule, steps, every=10, noise=0.0, seed=0):
    etas = lr_schedule(schedule, steps)
    grid = np.arange(0, steps + 1, every)
    loss = law.predict(etas, grid)
    return etas, grid, loss * (1 + noise * np.random.default_rng(seed).standard_normal(len(grid)))


TRUE = CurveLaw(l0=1.5, a=2.0, alpha=0.6, c=0.004, lam=0.99)


def test_fit_recovers_the_law_and_forecasts_held_out_schedules():
    runs = [_synthetic(TRUE, "constant", 400), _synthetic(TRUE, "cosine", 400)]
    law = fit_curve_law(runs)
    assert law.lam == 0.99  # the true momentum is on the grid and wins
    assert (law.l0, law.a, law.alpha, law.c) == pytest.approx((1.5, 2.0, 0.6, 0.004), rel=1e-3)
    for schedule, steps in (("wsd", 400), ("cosine", 800)):
        etas, grid, loss = _synthetic(TRUE, schedule, steps)
        assert max_relative_error(law.predict(etas, grid), loss, grid, steps) < 1e-3


def test_schedule_blind_fit_misses_the_annealing_drop():
    runs = [_synthetic(TRUE, "constant", 400), _synthetic(TRUE, "cosine", 400)]
    blind = fit_blind_power_law(runs)
    etas, grid, loss = _synthetic(TRUE, "wsd", 400)
    assert max_relative_error(blind.predict(etas, grid), loss, grid, 400) > 0.05  # negative control


def test_a_wrong_law_fails_the_2_percent_rule():
    etas, grid, loss = _synthetic(TRUE, "wsd", 400)
    wrong = CurveLaw(l0=1.5, a=2.0, alpha=0.6, c=0.0, lam=0.99)  # annealing ignored
    assert max_relative_error(wrong.predict(etas, grid), loss, grid, 400) > 0.02


def test_forecast_record_and_too_few_points():
    runs = [_synthetic(TRUE, "constant", 400, noise=0.002, seed=1), _synthetic(TRUE, "cosine", 400, noise=0.002, seed=2)]
    law = fit_curve_law(runs)
    etas, grid, loss = _synthetic(TRUE, "wsd", 400)
    boots = [fit_curve_law([_synthetic(TRUE, "constant", 400, noise=0.002, seed=s),
                            _synthetic(TRUE, "cosine", 400, noise=0.002, seed=s + 50)]) for s in range(10)]
    forecast = forecast_curve(law, etas, grid, boots, schedule="wsd/400")
    assert forecast.unit == "loss" and forecast.interval[0] <= forecast.forecast <= forecast.interval[1]
    assert abs(forecast.forecast / loss[-1] - 1) < 0.01
    with pytest.raises(NotIdentifiableError):
        fit_curve_law([(lr_schedule("constant", 10), np.array([0, 10]), np.array([1.0, 0.9]))])


def test_the_law_is_undefined_before_any_learning_rate_area():
    etas = lr_schedule("wsd", 100)
    curve = TRUE.predict(etas, [0, 1, 50])
    assert np.isnan(curve[0]) and np.isfinite(curve[1:]).all()  # S1 = 0 at step 0: no 1e22 "loss"
    blind = CurveLaw(l0=1.0, a=1.0, alpha=0.5, c=0.0, lam=0.9, blind=True)
    assert np.isnan(blind.predict(etas, [0])[0]) and blind.predict(etas, [4])[0] == pytest.approx(1.5)
    record = forecast_curve(TRUE, etas, [0, 50, 100]).to_json()
    assert record["details"]["curve"][0] is None and record["forecast"] == pytest.approx(TRUE.predict(etas, [100])[0])
