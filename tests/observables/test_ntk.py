"""ntk_gram against J J^T from an explicit Jacobian; alignment and distance on known kernels."""

import pytest
import torch
from ._observables_reference import assert_untouched, small_mlp, snapshot
from torch.func import functional_call

from lmech.observables.ntk import kernel_alignment, kernel_distance, ntk_gram


def _explicit_jacobian(model, x):
    """(N, C, P) Jacobian by torch.autograd.functional.jacobian on the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(t):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = t[i:i + s.numel()].view(s)
            i += s.numel()
        return functional_call(model, params, (x,))

    return torch.autograd.functional.jacobian(f, flat)


@pytest.mark.parametrize("chunk_size,cache_floats", [(3, 1 << 26), (64, 1 << 26), (3, 0)])
def test_all_modes_equal_explicit_jacobian_products(chunk_size, cache_floats):
    model, (x, _) = small_mlp(seed=0, n=10)
    x2 = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    j1, j2 = _explicit_jacobian(model, x), _explicit_jacobian(model, x2)
    full_ref = torch.einsum("ncp,mdp->nmcd", j1, j2)
    refs = {"full": full_ref, "diagonal": torch.diagonal(full_ref, dim1=2, dim2=3),
            "trace": torch.einsum("nmcc->nm", full_ref)}
    for mode, ref in refs.items():
        k = ntk_gram(model, x, x2, mode=mode, chunk_size=chunk_size, cache_floats=cache_floats).gram
        # float64, same sums in a different order: relative Frobenius 1e-12
        assert k.shape == ref.shape
        assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12, mode


def test_symmetric_call_and_negative_control():
    model, (x, _) = small_mlp(seed=2, n=8)
    j = _explicit_jacobian(model, x)
    ref = torch.einsum("ncp,mcp->nm", j, j)
    k = ntk_gram(model, x, chunk_size=3).gram
    assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12  # float64 identity
    x_bad = x.clone()
    x_bad[0] += 0.5
    k_bad = ntk_gram(model, x_bad).gram
    assert torch.linalg.norm(k_bad - ref) / torch.linalg.norm(ref) > 1e-6  # a changed input is caught


def test_model_untouched_and_json():
    model, (x, _) = small_mlp(seed=3, n=5)
    before = snapshot(model)
    r = ntk_gram(model, x, mode="full")
    assert_untouched(model, before)
    j = r.to_json()
    assert j["mode"] == "full" and len(j["gram"]) == 5 and len(j["gram"][0][0]) == 3


def test_alignment_and_distance_closed_forms():
    g = torch.Generator().manual_seed(4)
    y = torch.randint(0, 3, (30,), generator=g)
    yy = torch.nn.functional.one_hot(y, 3).double()
    k_ideal = 2.5 * yy @ yy.T
    # K proportional to YY^T: alignment exactly 1 (float64 rounding)
    assert abs(kernel_alignment(k_ideal, y) - 1.0) < 1e-12
    assert abs(kernel_alignment(k_ideal, y, centered=False) - 1.0) < 1e-12
    # centering removes a constant offset: centered alignment still 1, uncentered not
    assert abs(kernel_alignment(k_ideal + 7.0, y) - 1.0) < 1e-12
    assert abs(kernel_alignment(k_ideal + 7.0, y, centered=False) - 1.0) > 1e-3
    z = torch.randn(30, 5, generator=g, dtype=torch.float64)
    k_rand = z @ z.T
    assert kernel_alignment(k_rand, y) < 0.9  # negative control: an unrelated kernel is not aligned
    assert abs(kernel_distance(k_rand, 3.0 * k_rand)) < 1e-12  # scale invariant, exact
    assert kernel_distance(k_rand, k_ideal) > 0.05  # different kernels are apart
