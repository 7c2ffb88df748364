"""hessian_trace against exact traces (diagonal quadratic, explicit MLP Hessian)."""

import torch
from tests.instruments._reference import (Quadratic, assert_untouched, ce, explicit_hessian,
                                    known_spectrum_matrix, quadratic_loss, small_mlp, snapshot)

from lmech.instruments.hessian_trace import hessian_trace


def test_diagonal_quadratic_is_exact():
    a = torch.diag(torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64))
    model = Quadratic(torch.zeros(4, dtype=torch.float64))
    r = hessian_trace(model, quadratic_loss, (torch.zeros(1), a), num_probes=5)
    # Rademacher v^T D v = tr(D) for every probe when D is diagonal: exact in float64
    assert abs(r.estimate - 4.5) < 1e-12 and r.standard_error < 1e-12


def test_mlp_trace_within_standard_errors():
    model, batch = small_mlp(seed=0)
    true = torch.trace(explicit_hessian(model, ce, batch)).item()
    r = hessian_trace(model, ce, batch, num_probes=200, seed=1)
    assert r.num_probes == 200
    # stochastic estimator at fixed probe count: 4 standard errors (false alarm ~6e-5)
    assert abs(r.estimate - true) < 4 * r.standard_error


def test_negative_control_shifted_trace_is_detected():
    lam = torch.linspace(-1.0, 3.0, 10, dtype=torch.float64)
    a = known_spectrum_matrix(lam, seed=3)
    model = Quadratic(torch.zeros(10, dtype=torch.float64))
    r = hessian_trace(model, quadratic_loss, (torch.zeros(1), a), num_probes=200, seed=0)
    true = lam.sum().item()
    assert abs(r.estimate - true) < 4 * r.standard_error  # same 4-SE rule as above
    wrong = true + 10 * r.standard_error
    assert abs(r.estimate - wrong) > 4 * r.standard_error  # a 10-SE error would be caught


def test_probe_batching_does_not_change_samples():
    model, batch = small_mlp(seed=2)
    r1 = hessian_trace(model, ce, batch, num_probes=9, probe_batch=1, seed=4)
    r4 = hessian_trace(model, ce, batch, num_probes=9, probe_batch=4, seed=4)
    # same probes, same float64 products: equal up to rounding
    assert torch.allclose(r1.samples, r4.samples, rtol=1e-12, atol=1e-14)


def test_stopping_rule_on_relative_standard_error():
    model, batch = small_mlp(seed=0)
    r = hessian_trace(model, ce, batch, num_probes=1000, rel_se_tol=0.1, min_probes=10, seed=0)
    assert r.converged and r.num_probes < 1000
    assert r.standard_error <= 0.1 * abs(r.estimate)


def test_untouched_and_json():
    model, batch = small_mlp(seed=5)
    before = snapshot(model)
    r = hessian_trace(model, ce, batch, num_probes=4)
    assert_untouched(model, before)
    assert set(r.to_json()) == {"estimate", "standard_error", "num_probes", "converged", "samples"}
