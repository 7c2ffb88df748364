"""lmech.forecast.max_lr and the held-out bisection, against closed forms on quadratic losses."""

import math

import pytest
import torch

from lmech.errors import InputError
from lmech.forecast._check import OptimizerChoice, bisect_divergence_lr, diverges
from lmech.forecast.max_lr import (CATAPULT_FACTOR, RELU_CATAPULT_FACTOR, adam_init_preconditioner, check_max_lr,
                                   forecast_max_lr, is_piecewise_linear, max_lr_window)
from lmech.forecast.result import Forecast
from lmech.instruments.losses import named_loss
from lmech.instruments.preconditioned_sharpness import adam_preconditioner


def _linear_problem(n=64, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    # mse = mean (x w - y)^2: Hessian 2 X^T X / n exactly (quadratic loss, no catapult)
    lam = float(torch.linalg.eigvalsh(2 * x.T @ x / n)[-1])
    return model, (x, y), lam


def test_window_rules_are_the_closed_forms():
    assert max_lr_window(4.0, OptimizerChoice("sgd"), "mse") == (0.5, 0.5, 0.5 * CATAPULT_FACTOR)
    assert max_lr_window(4.0, OptimizerChoice("sgd"), "mse", piecewise_linear=True)[2] == 0.5 * RELU_CATAPULT_FACTOR
    point, low, high = max_lr_window(4.0, OptimizerChoice("momentum", momentum=0.9), "mse")
    assert point == pytest.approx(3.8 / 4.0, rel=1e-12) and low == pytest.approx(point / 2) and high == pytest.approx(point * 2)
    point, low, high = max_lr_window(2.0, OptimizerChoice("adam", betas=(0.9, 0.999)), "mse")
    assert point == pytest.approx(38 / 2.0, rel=1e-12) and low == point and high == math.inf


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_window_refuses_non_positive_curvature(bad):
    with pytest.raises(InputError):
        max_lr_window(bad, OptimizerChoice("sgd"), "mse")


@pytest.mark.parametrize("kwargs", [{"name": "rmsprop"}, {"name": "momentum", "momentum": 1.0},
                                    {"name": "adam", "betas": (0.9, 1.5)}, {"name": "adam", "eps": 0.0}])
def test_optimizer_choice_refuses_bad_hyperparameters(kwargs):
    with pytest.raises(InputError):
        OptimizerChoice(**kwargs)


def test_forecast_is_two_over_the_exact_top_eigenvalue_and_leaves_the_model_alone():
    model, data, lam = _linear_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = forecast_max_lr(model, named_loss("mse"), data, "mse", OptimizerChoice("sgd"), reports=None)
    assert result.forecast == pytest.approx(2 / lam, rel=1e-4)  # Lanczos rel_tol 1e-4
    assert result.interval == pytest.approx((2 / lam, 2 * CATAPULT_FACTOR / lam), rel=1e-4)
    assert result.details["curvature"] == pytest.approx(lam, rel=1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.to_json()["track_record"] is None


def test_bisection_finds_two_over_lambda_on_a_quadratic():
    model, data, lam = _linear_problem()
    loss = named_loss("mse")
    assert not diverges(model, loss, data, OptimizerChoice("sgd"), 0.95 * 2 / lam, 200)
    assert diverges(model, loss, data, OptimizerChoice("sgd"), 1.05 * 2 / lam, 200)
    bracket = bisect_divergence_lr(model, loss, data, OptimizerChoice("sgd"), 0.3 / lam, steps=200, rel_tol=0.02)
    assert bracket.stable < bracket.unstable <= bracket.stable * 1.02
    assert bracket.lr * lam / 2 == pytest.approx(1.0, abs=0.03)  # the quadratic's exact edge, 2/λ


def test_momentum_bisection_finds_the_heavy_ball_threshold_on_a_quadratic():
    model, data, lam = _linear_problem()
    choice = OptimizerChoice("momentum", momentum=0.5)
    bracket = bisect_divergence_lr(model, named_loss("mse"), data, choice, 1.0 / lam, steps=300, rel_tol=0.02)
    assert bracket.lr * lam / 3.0 == pytest.approx(1.0, abs=0.04)  # (2 + 2β)/λ with β = 0.5


def test_check_scores_the_window_and_fails_a_shifted_forecast():
    model, data, lam = _linear_problem()
    loss = named_loss("mse")
    right = forecast_max_lr(model, loss, data, "mse", OptimizerChoice("sgd"), reports=None)
    ok = check_max_lr(model, loss, data, right, OptimizerChoice("sgd"), steps=200)
    assert ok["passed"] and ok["error"] == 1.0 and ok["ratio"] == pytest.approx(1.0, abs=0.06)
    wrong = Forecast("max-lr", 6 / lam, (6 / lam, 12 / lam), "learning rate", "shifted x3", "forecast-max-lr")
    bad = check_max_lr(model, loss, data, wrong, OptimizerChoice("sgd"), steps=200)
    assert not bad["passed"] and bad["error"] == pytest.approx(3.0, rel=0.06)  # the quadratic diverges at 2/λ


def test_adam_preconditioner_is_torch_adams_after_one_step():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1))
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    loss = named_loss("mse")
    mine = adam_init_preconditioner(model, loss, (x, y), eps=1e-8)
    copy = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1))
    copy.load_state_dict(model.state_dict())
    optimizer = torch.optim.Adam(copy.parameters(), lr=1e-3, eps=1e-8)
    loss(copy(x), y).backward()
    optimizer.step()
    torchs = adam_preconditioner(optimizer, copy)
    torch.testing.assert_close(mine, torchs, rtol=1e-5, atol=1e-9)  # float32: sqrt(v̂₁) = |g|


def test_piecewise_detection():
    assert is_piecewise_linear(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    assert not is_piecewise_linear(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
