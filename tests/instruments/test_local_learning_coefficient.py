"""local_learning_coefficient: d/2 for a regular model (linear regression at its OLS minimum)."""

import torch
from tests.instruments._reference import assert_untouched, snapshot

from lmech.instruments.local_learning_coefficient import local_learning_coefficient


def _regression(d, n=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + torch.randn(n, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(d, 1, bias=False).double()
    w_ols = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    with torch.no_grad():
        model.weight.copy_(w_ols[None])  # w* = the empirical minimum
    return model, (x, y[:, None])


def _nll(out, y):
    return 0.5 * ((out - y) ** 2).mean()  # Gaussian negative log-likelihood (unit variance) up to a constant


def _llc(model, data, seed=0):
    # epsilon * n * beta / 4 ~ 0.03: discretization inflates by ~3%; gamma = 1 deflates by ~0.7%
    return local_learning_coefficient(model, _nll, data, epsilon=8e-4, gamma=1.0, num_chains=16,
                                      num_steps=600, num_burnin=100, seed=seed)


def _sgld_expectation(data, epsilon=8e-4, gamma=1.0):
    """Exact stationary E[n beta (L - L*)] of this discretized, localized full-batch SGLD.

    In the eigenbasis of H = X^T X / n each coordinate is an AR(1) process
    u <- (1 - epsilon c / 2) u + sqrt(epsilon) xi with c = gamma + n beta h, whose
    stationary variance is epsilon / (1 - (1 - epsilon c / 2)^2).
    """
    x = data[0]
    n = x.shape[0]
    nb = n / torch.log(torch.tensor(float(n), dtype=torch.float64))
    h = torch.linalg.eigvalsh(x.T @ x / n)
    c = gamma + nb * h
    var = epsilon / (1 - (1 - epsilon * c / 2) ** 2)
    return (nb * 0.5 * h * var).sum().item()


def test_regular_model_gives_half_the_dimension():
    model, data = _regression(d=3)
    before = snapshot(model)
    r = _llc(model, data)
    assert_untouched(model, before)
    # the sampler against its own exact expectation: 4 standard errors over 16 chains
    assert abs(r.estimate - _sgld_expectation(data)) < 4 * r.standard_error
    # the physics: d/2 = 1.5 within 10% (3% discretization bias + ~4% chain noise, with margin)
    assert abs(r.estimate - 1.5) < 0.15, r.estimate
    assert r.loss_trace.shape == (16, 600) and r.batch_size == 1000


def test_negative_control_more_parameters_breaks_the_check():
    model, data = _regression(d=6)
    r = _llc(model, data)
    assert abs(r.estimate - 1.5) > 0.15  # d = 6 gives ~3, so the d = 3 check above would fail
    assert abs(r.estimate - 3.0) < 0.3  # and it sits near its own d/2 (same 10% tolerance)


def test_minibatch_runs_seeded_and_json():
    model, data = _regression(d=2, n=200)
    a = local_learning_coefficient(model, _nll, data, num_chains=2, num_steps=20, num_burnin=5,
                                   batch_size=32, seed=1)
    b = local_learning_coefficient(model, _nll, data, num_chains=2, num_steps=20, num_burnin=5,
                                   batch_size=32, seed=1)
    assert a.estimate == b.estimate and a.batch_size == 32
    assert {"estimate", "standard_error", "chain_estimates", "loss_trace", "init_loss", "n", "beta",
            "epsilon", "gamma", "num_steps", "num_burnin", "batch_size"} == set(a.to_json())
