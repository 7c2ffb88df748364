"""loss_barrier: zero for identical endpoints, closed form on a concave quadratic, state_dict handling."""

import torch
from tests.instruments._reference import Quadratic, assert_untouched, snapshot

from lmech.instruments.loss_barrier import loss_barrier


def _neg_quadratic(out, a):
    return -0.5 * out @ a @ out  # concave: L(a) lies above the chord by 0.5 a (1 - a) d^T A d


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    w0 = torch.randn(3, generator=g, dtype=torch.float64)
    w1 = torch.randn(3, generator=g, dtype=torch.float64)
    return Quadratic(w0), (torch.zeros(1), a), w0, w1


def test_identical_endpoints_give_zero():
    model, batch, w0, _ = _setup()
    r = loss_barrier(model, _neg_quadratic, batch, w0, w0.clone())
    # (1 - a) w + a w differs from w by rounding only (float64)
    assert abs(r.barrier) < 1e-12 and torch.allclose(r.losses, r.losses[0].expand(11), rtol=1e-13, atol=0)


def test_concave_quadratic_closed_form_and_negative_control():
    model, batch, w0, w1 = _setup()
    before = snapshot(model)
    r = loss_barrier(model, _neg_quadratic, batch, w0, w1, num_points=11)
    assert_untouched(model, before)
    d = w1 - w0
    exact = 0.125 * (d @ batch[1] @ d).item()  # max of 0.5 a (1 - a) d^T A d at a = 1/2
    assert abs(r.barrier - exact) < 1e-12 and r.barrier_alpha == 0.5  # float64 rounding
    coarse = loss_barrier(model, _neg_quadratic, batch, w0, w1, num_points=4)  # grid misses a = 1/2
    assert abs(coarse.barrier - exact) > 1e-3
    convex = loss_barrier(model, lambda o, a: -_neg_quadratic(o, a), batch, w0, w1)
    assert abs(convex.barrier) < 1e-12  # convex loss: chord above the curve, max gap at the endpoints


def test_state_dicts_interpolate_buffers_and_match_flat():
    g = torch.Generator().manual_seed(1)
    m0 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).double().eval()
    m1 = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).double().eval()
    with torch.no_grad():
        for p in list(m0.parameters()) + list(m1.parameters()):
            p.copy_(torch.randn(p.shape, generator=g))
        m1[1].running_mean.copy_(torch.randn(4, generator=g))
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (10,), generator=g)
    ce = torch.nn.functional.cross_entropy
    before = snapshot(m0)
    r = loss_barrier(m0, ce, (x, y), m0.state_dict(), m1.state_dict(), num_points=5)
    assert_untouched(m0, before)
    with torch.no_grad():
        assert abs(r.losses[-1].item() - ce(m1(x), y).item()) < 1e-12  # endpoint 1 incl. buffers
        assert abs(r.losses[0].item() - ce(m0(x), y).item()) < 1e-12
    flat1 = torch.cat([p.detach().reshape(-1) for p in m1.parameters()])
    flat0 = torch.cat([p.detach().reshape(-1) for p in m0.parameters()])
    r_flat = loss_barrier(m0, ce, (x, y), flat0, flat1, num_points=5)
    # flat endpoints keep m0's buffers, so the end differs exactly where running_mean differs
    assert abs(r_flat.losses[-1].item() - r.losses[-1].item()) > 1e-6
    assert set(r.to_json()) == {"barrier", "barrier_alpha", "barrier_mean_endpoints", "alphas", "losses"}
