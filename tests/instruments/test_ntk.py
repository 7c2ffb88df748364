"""ntk_gram against J J^T from an explicit Jacobian; alignment and distance on known kernels."""

import pytest
import torch
from tests.instruments._reference import assert_untouched, small_mlp, snapshot
from torch.func import functional_call

from lmech.instruments.ntk import kernel_alignment, kernel_distance, ntk_gram, structured_layers


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
        k = ntk_gram(model, x, x2, contraction=mode, method="jacobian", chunk_size=chunk_size,
                     cache_floats=cache_floats).gram
        # float64, same sums in a different order: relative Frobenius 1e-12
        assert k.shape == ref.shape
        assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12, mode
    # symmetric call: blocks above the diagonal are computed, those below mirrored
    full_sym = torch.einsum("ncp,mdp->nmcd", j1, j1)
    sym_refs = {"full": full_sym, "diagonal": torch.diagonal(full_sym, dim1=2, dim2=3),
                "trace": torch.einsum("nmcc->nm", full_sym)}
    for mode, ref in sym_refs.items():
        k = ntk_gram(model, x, contraction=mode, method="jacobian", chunk_size=chunk_size, cache_floats=cache_floats).gram
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
    r = ntk_gram(model, x, contraction="full")
    assert_untouched(model, before)
    j = r.to_json()
    assert j["contraction"] == "full" and len(j["gram"]) == 5 and len(j["gram"][0][0]) == 3


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


def _trainable_jacobian(model, x):
    """(N, C, P) Jacobian w.r.t. the trainable parameters only, outputs flattened to C."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for n, p in model.named_parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])

    def f(t):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = t[i:i + s.numel()].view(s)
            i += s.numel()
        return functional_call(model, params, (x,)).reshape(x.shape[0], -1)

    return torch.autograd.functional.jacobian(f, flat)


def _seeded(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)
    return model


def _architectures():
    nn = torch.nn
    relu = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3))
    gelu_nobias = nn.Sequential(nn.Linear(4, 5, bias=False), nn.GELU(), nn.Linear(5, 3, bias=False))
    flatten_first = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2), nn.Sigmoid())
    stacked = nn.Sequential(nn.Tanh(), nn.Linear(4, 6), nn.SiLU(), nn.Softplus(), nn.Linear(6, 3),
                            nn.ReLU(inplace=True), nn.Linear(3, 2))
    frozen = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.1), nn.Linear(6, 3))
    frozen[0].weight.requires_grad_(False)
    frozen[2].bias.requires_grad_(False)
    return {"relu": relu, "gelu_nobias": gelu_nobias, "flatten_first": flatten_first, "stacked": stacked,
            "frozen": frozen}


@pytest.mark.parametrize("name", sorted(_architectures()))
@pytest.mark.parametrize("cache_floats", [1 << 26, 40])
def test_structured_path_equals_explicit_jacobian_products(name, cache_floats):
    model = _seeded(_architectures()[name].double(), seed=5)
    g = torch.Generator().manual_seed(6)
    shape = (2, 2) if name == "flatten_first" else (4,)
    x = torch.randn(9, *shape, generator=g, dtype=torch.float64)
    x2 = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    x_before = x.clone()
    assert structured_layers(model) is not None
    j1, j2 = _trainable_jacobian(model, x), _trainable_jacobian(model, x2)
    full_ref = torch.einsum("ncp,mdp->nmcd", j1, j2)
    refs = {"full": full_ref, "diagonal": torch.diagonal(full_ref, dim1=2, dim2=3),
            "trace": torch.einsum("nmcc->nm", full_ref)}
    for mode, ref in refs.items():
        # cache_floats=40 forces one-row chunks and recomputed column factors
        k = ntk_gram(model, x, x2, contraction=mode, method="structured", cache_floats=cache_floats).gram
        assert k.shape == ref.shape
        assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12, mode  # float64 rounding
    sym = ntk_gram(model, x, method="structured").gram
    ref_sym = torch.einsum("ncp,mcp->nm", j1, j1)
    assert torch.linalg.norm(sym - ref_sym) / torch.linalg.norm(ref_sym) < 1e-12
    assert torch.equal(x, x_before)  # an in-place activation never writes into the caller's inputs


def test_structured_and_jacobian_methods_agree_in_float32():
    model = _seeded(_architectures()["relu"], seed=7)
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(8))
    a = ntk_gram(model, x, method="structured").gram
    b = ntk_gram(model, x, method="jacobian").gram
    assert torch.linalg.norm(a - b) / torch.linalg.norm(b) < 1e-5  # float32 sums in two orders
    c = ntk_gram(model, x).gram  # auto takes the structured path
    assert torch.equal(a, c)


def test_structured_path_refuses_what_it_cannot_do():
    nn = torch.nn
    refused = [nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.1), nn.Linear(3, 2)),  # random, not elementwise
               nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)),  # parameters outside Linear
               nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2)),  # mixes coordinates
               nn.Sequential(nn.Flatten(start_dim=1, end_dim=1), nn.Linear(4, 2)),  # not the default flatten
               nn.Linear(4, 2)]  # not a Sequential
    hooked = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    hooked[1].register_forward_hook(lambda m, i, o: o * 2)
    refused.append(hooked)
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for model in refused:
        model = _seeded(model.double(), seed=10).eval()  # dropout off, still not structured
        assert structured_layers(model) is None
        with pytest.raises(ValueError, match="structured"):
            ntk_gram(model, x, method="structured")
        j = _trainable_jacobian(model, x)  # auto falls back to the Jacobian method, still exact
        ref = torch.einsum("ncp,mcp->nm", j, j)
        k = ntk_gram(model, x).gram
        assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12
    frozen_all = nn.Sequential(nn.Linear(4, 2))
    frozen_all.requires_grad_(False)
    assert structured_layers(frozen_all) is None


def test_jacobian_method_mirrors_symmetric_blocks_of_a_deep_net():
    # three layers: K[n, m, c, d] is not symmetric in (c, d), so a wrong mirror is caught
    model = _seeded(_architectures()["stacked"].double(), seed=11)
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    j = _trainable_jacobian(model, x)
    full = torch.einsum("ncp,mdp->nmcd", j, j)
    assert torch.linalg.norm(full - full.permute(0, 1, 3, 2)) > 1e-3 * torch.linalg.norm(full)
    refs = {"full": full, "diagonal": torch.diagonal(full, dim1=2, dim2=3), "trace": torch.einsum("nmcc->nm", full)}
    for mode, ref in refs.items():
        k = ntk_gram(model, x, contraction=mode, method="jacobian", chunk_size=3).gram
        assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12, mode


def test_inputs_with_extra_axes_fall_back_to_the_jacobian_method():
    model = _seeded(_architectures()["relu"].double(), seed=13)
    x = torch.randn(5, 2, 4, generator=torch.Generator().manual_seed(14), dtype=torch.float64)  # (N, T, D)
    with pytest.raises(ValueError, match="structured"):
        ntk_gram(model, x, method="structured")
    j = _trainable_jacobian(model, x)  # outputs (N, T, C) flattened to T * C logits
    ref = torch.einsum("ncp,mcp->nm", j, j)
    k = ntk_gram(model, x).gram
    assert torch.linalg.norm(k - ref) / torch.linalg.norm(ref) < 1e-12
