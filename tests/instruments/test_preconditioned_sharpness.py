"""preconditioned_sharpness against explicit P^{-1/2} H P^{-1/2}; adam_preconditioner against Adam's formula."""

import pytest
import torch
from tests.instruments._reference import assert_untouched, ce, explicit_hessian, small_mlp, snapshot

from lmech.instruments._hvp import param_layout, unflatten_params
from lmech.instruments.preconditioned_sharpness import adam_preconditioner, preconditioned_sharpness
from lmech.instruments.sharpness import sharpness


def _adam_after_steps(model, batch, steps=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        ce(model(batch[0]), batch[1]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return opt


def test_matches_explicit_generalized_eigenvalues():
    model, batch = small_mlp(seed=0)
    opt = _adam_after_steps(model, batch)
    d = adam_preconditioner(opt, model)
    h = explicit_hessian(model, ce, batch)
    s = h / torch.sqrt(d[:, None] * d[None, :])
    ref = torch.linalg.eigvalsh(s).flip(0)[:2]
    ref_nonsym = torch.linalg.eigvals(torch.linalg.solve(torch.diag(d), h)).real.sort(descending=True).values[:2]
    r = preconditioned_sharpness(model, ce, batch, d, k=2, rel_tol=1e-10)
    # float64: similarity transform, then Lanczos to 1e-10 bound: 1e-8 relative
    assert torch.max(torch.abs(r.eigenvalues - ref) / ref.abs()) < 1e-8
    assert torch.max(torch.abs(ref - ref_nonsym) / ref.abs()) < 1e-8  # P^-1 H has the same spectrum


def test_adam_preconditioner_formula_and_dict_input():
    model, batch = small_mlp(seed=1)
    opt = _adam_after_steps(model, batch, steps=2)
    d = adam_preconditioner(opt, model)
    layout = param_layout(model)
    manual = []
    for n, p in model.named_parameters():
        st = opt.state[p]
        manual.append((st["exp_avg_sq"] / (1 - 0.999 ** 2)).sqrt().reshape(-1) + 1e-8)
    # same float64 ops in the same order: exact up to rounding
    assert torch.allclose(d, torch.cat(manual), rtol=1e-14, atol=0)
    as_dict = {n: t.clone() for n, t in unflatten_params(d, layout).items()}
    r_flat = preconditioned_sharpness(model, ce, batch, d, seed=1)
    r_dict = preconditioned_sharpness(model, ce, batch, as_dict, seed=1)
    assert torch.equal(r_flat.eigenvalues, r_dict.eigenvalues)


def test_identity_preconditioner_is_sharpness_and_negative_control():
    model, batch = small_mlp(seed=2)
    ones = torch.ones(param_layout(model).size, dtype=torch.float64)
    plain = sharpness(model, ce, batch, rel_tol=1e-10).eigenvalues[0]
    r = preconditioned_sharpness(model, ce, batch, ones, rel_tol=1e-10).eigenvalues[0]
    assert abs(r - plain) / plain < 1e-8  # float64, both converged to 1e-10 bounds
    r2 = preconditioned_sharpness(model, ce, batch, 2 * ones, rel_tol=1e-10).eigenvalues[0]
    assert abs(r2 - plain) / plain > 1e-8  # P = 2I halves it: the check above would fail


def test_rejects_nonpositive_and_missing_state():
    model, batch = small_mlp(seed=3)
    with pytest.raises(ValueError):
        preconditioned_sharpness(model, ce, batch, torch.zeros(param_layout(model).size, dtype=torch.float64))
    with pytest.raises(KeyError):
        adam_preconditioner(torch.optim.Adam(model.parameters()), model)


def test_untouched():
    model, batch = small_mlp(seed=4)
    d = torch.ones(param_layout(model).size, dtype=torch.float64)
    before = snapshot(model)
    r = preconditioned_sharpness(model, ce, batch, d)
    assert_untouched(model, before)
    assert set(r.to_json()) == {"eigenvalues", "residual_bounds", "error_bounds", "hvp_count", "converged"}
