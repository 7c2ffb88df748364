"""lmech.forecast.batch: B_noise against a brute-force Hessian and per-example gradients, the ε_opt law and its fit."""

import math

import numpy as np
import pytest
import torch

from lmech.errors import InputError
from lmech.forecast.batch import (best_lr_from_losses, check_batch_forecast, check_batches, fit_eps_max,
                                  forecast_batch_for_model, hessian_noise_scale, lr_grid, optimal_lr)
from lmech.instruments.losses import named_loss


def _problem(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    return model, (x, y)


def _brute_force(model, data):
    """G, H, Σ by explicit autograd in float64: H from torch.autograd.functional.hessian of the flat loss."""
    loss = named_loss("mse")
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def unflat(v):
        out, i = {}, 0
        for name, shape in zip(names, shapes):
            k = int(np.prod(shape))
            out[name] = v[i:i + k].reshape(shape)
            i += k
        return out

    def f(v, x, y):
        return loss(torch.func.functional_call(model, unflat(v), (x,)), y)

    x, y = data
    hessian = torch.autograd.functional.hessian(lambda v: f(v, x, y), flat)
    grads = torch.stack([torch.autograd.functional.jacobian(lambda v: f(v, x[i:i + 1], y[i:i + 1]), flat)
                         for i in range(len(x))])
    mean = grads.mean(0)
    sigma = (grads - mean).T @ (grads - mean) / len(x)
    return mean, hessian, sigma


def test_noise_scales_equal_brute_force_when_every_example_is_used():
    model, data = _problem()
    g, h, sigma = _brute_force(model, data)
    result = hessian_noise_scale(model, named_loss("mse"), data, examples=None)
    assert result.examples == result.population == 40 and result.b_noise_se == 0.0
    b_noise = float(torch.trace(h @ sigma) / (g @ h @ g))
    b_simple = float(torch.trace(sigma) / (g @ g))
    assert result.b_noise == pytest.approx(b_noise, rel=1e-8)  # float64 identities
    assert result.b_simple == pytest.approx(b_simple, rel=1e-8)
    assert result.eps_max == pytest.approx(float((g @ g) / (g @ h @ g)), rel=1e-8)
    assert abs(result.b_noise - result.b_simple) > 0.05 * b_simple  # the anisotropic H weights them apart


def test_subsampled_noise_scale_is_within_its_standard_errors():
    model, data = _problem(n=200, seed=1)
    exact = hessian_noise_scale(model, named_loss("mse"), data, examples=None)
    sample = hessian_noise_scale(model, named_loss("mse"), data, examples=100, seed=3)
    assert 0 < sample.b_noise_se < 0.5 * exact.b_noise
    assert abs(sample.b_noise - exact.b_noise) < 4 * sample.b_noise_se  # a fixed draw, 4 standard errors


def test_optimal_lr_closed_form_and_bad_batches():
    assert optimal_lr([10.0], 1.0, 10.0)[0] == pytest.approx(0.5)
    assert optimal_lr(1e9, 2.0, 10.0) == pytest.approx(2.0, rel=1e-7)
    with pytest.raises(InputError):
        optimal_lr([0, 4], 1.0, 10.0)
    with pytest.raises(InputError):
        optimal_lr([-2], 1.0, 10.0)


def test_fit_recovers_eps_max_and_a_wrong_noise_scale_misses_large_batches():
    small = np.array([2.0, 4.0, 8.0])
    wiggle = np.array([1.05, 0.97, 1.01])  # grid-like scatter
    truth = optimal_lr(small, 0.3, 60.0) * wiggle
    fit = fit_eps_max(small, truth, 60.0)
    assert fit.eps_max == pytest.approx(0.3, rel=0.03) and fit.lo < 0.3 < fit.hi
    big = np.array([128.0, 256.0, 512.0])
    right = optimal_lr(big, fit.eps_max, 60.0) / optimal_lr(big, 0.3, 60.0)
    assert np.all(np.maximum(right, 1 / right) < 1.05)
    wrong_fit = fit_eps_max(small, truth, 6.0)  # an underestimated B_noise: the forecast saturates too early
    wrong = optimal_lr(big, wrong_fit.eps_max, 6.0) / optimal_lr(big, 0.3, 60.0)
    assert np.max(np.maximum(wrong, 1 / wrong)) > 1.5


@pytest.mark.parametrize("bad", [([2.0], [0.1]), ([2.0, 4.0], [0.1, -0.2]), ([2.0, 0.0], [0.1, 0.2])])
def test_fit_refuses_bad_input(bad):
    with pytest.raises(InputError):
        fit_eps_max(*bad, 10.0)


def test_best_lr_is_the_parabola_vertex_and_edges_are_flagged():
    grid = lr_grid(0.1, 3)
    losses = [(math.log(lr) - math.log(0.113)) ** 2 for lr in grid]
    best, edge = best_lr_from_losses(grid, losses)
    assert best == pytest.approx(0.113, rel=1e-9) and not edge
    best, edge = best_lr_from_losses(grid, [-lr for lr in grid])  # still falling at the top of the grid
    assert best == pytest.approx(grid[-1]) and edge


@pytest.mark.parametrize("batches,fit", [([0, 4, 8, 16], 3), ([2, 4, 8], 3), ([4, 2, 8, 16], 3), ([2, 4, 8, 999], 3),
                                         ([2, 4, 8, 16], 1)])
def test_batch_lists_are_validated(batches, fit):
    with pytest.raises(InputError):
        check_batches(batches, fit, 100)


def test_forecast_and_check_on_a_small_model():
    """The whole forecast on a model whose one-step law holds: the held-out best rates within 1.5x."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) * 0.5 + torch.randn(512, 1, generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    loss = named_loss("mse")
    result = forecast_batch_for_model(model, loss, (x, y), [2, 4, 8, 16, 64], draws=32, examples=None, reports=None)
    assert result.forecast > 0 and result.interval[0] <= result.forecast <= result.interval[1]
    assert set(result.details["lr_at_batch"]) == {"2", "4", "8", "16", "64"}
    outcome = check_batch_forecast(model, loss, (x, y), result, draws=32)
    assert [r["batch"] for r in outcome["rows"]] == [16, 64]
    assert outcome["passed"], outcome
    with pytest.raises(InputError):
        check_batch_forecast(model, loss, (x, y), forecast_batch_for_model(
            model, loss, (x, y), [2, 4, 8, 16], draws=2, examples=16, reports=None))  # spans 8x < 32x
