import math

import pytest
import torch
from pydantic import ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models.linear_recurrence import (
    LinearRecurrenceSpec,
    build_linear_recurrence,
    diagonal_recurrence,
    linear_recurrence_lr_multipliers,
)

V = 12


def _tokens(n=3, t=10, seed=0):
    return torch.randint(0, V, (n, t), generator=torch.Generator().manual_seed(seed))


def _build(seed=0, **fields):
    fields.setdefault("width", 16)
    return build_linear_recurrence(LinearRecurrenceSpec(**fields), (10,), V, V, seed)


def _loop(u, a):
    """The recurrence step by step: s_t = a * s_(t-1) + u_t."""
    s = torch.zeros_like(u[:, 0])
    out = []
    for t in range(u.shape[1]):
        s = a * s + u[:, t]
        out.append(s)
    return torch.stack(out, dim=1)


def test_closed_form_equals_the_loop_in_float64():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(4, 64, 6, generator=g, dtype=torch.float64)
    a = torch.tensor([0.0001, 0.3, 0.9, 0.99, 0.999, 0.999999], dtype=torch.float64)
    closed = diagonal_recurrence(u, torch.log(a))
    assert (closed - _loop(u, a)).abs().max() < 1e-11  # exact identity, float64 sums of 64 terms
    other = diagonal_recurrence(u, torch.log(a * 0.99))
    assert (other - _loop(u, a)).abs().max() > 1e-3  # negative control


def test_gamma_normalization_keeps_state_variance_at_one():
    """White unit-variance input scaled by gamma = sqrt(1 - a^2): Var(s_T) = 1 - a^(2T) (about 1).
    4,000 sequences: the sample variance has relative standard error sqrt(2/4000) = 2.2%; allow 10%."""
    g = torch.Generator().manual_seed(1)
    a = torch.tensor([0.5, 0.9, 0.97], dtype=torch.float64)
    u = torch.randn(4000, 64, 3, generator=g, dtype=torch.float64) * torch.sqrt(1 - a**2)
    variance = diagonal_recurrence(u, torch.log(a))[:, -1].var(dim=0)
    expected = 1 - a ** (2 * 64)
    assert ((variance / expected - 1).abs() < 0.10).all(), variance
    raw = diagonal_recurrence(u / torch.sqrt(1 - a**2), torch.log(a))[:, -1].var(dim=0)
    assert raw[2] > 10  # negative control: without gamma, 1 / (1 - 0.97^2) = 16.9


@pytest.mark.parametrize("fields", [{}, {"mlp_ratio": 0.0, "bias": False}, {"depth": 0},
                                    {"state_ratio": 0.5, "normalize_input": False}])
def test_shapes_and_parameter_sets(fields):
    model = _build(**fields)
    out = model(_tokens())
    assert out.shape == (3, 10, V) and torch.isfinite(out).all()
    names = {n for n, _ in model.named_parameters()}
    assert any(".up." in n for n in names) == (fields.get("mlp_ratio", 4.0) > 0 and fields.get("depth", 2) > 0)
    if "state_ratio" in fields:
        assert model.blocks[0].recurrence.in_proj.weight.shape == (8, 16)


def test_is_causal():
    model = _build()
    x = _tokens(n=1)
    y = x.clone()
    y[0, 6] = (y[0, 6] + 1) % V
    a, b = model(x), model(y)
    assert torch.equal(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-3  # negative control: the future does change


def test_decays_are_stable_and_start_on_the_ring():
    model = _build(width=64, a_min=0.8, a_max=0.95)
    recurrence = model.blocks[0].recurrence
    a = recurrence.decay()
    assert (a >= 0.8 - 1e-6).all() and (a <= 0.95 + 1e-6).all()  # float32 round trip of log(-log a)
    assert a.max() - a.min() > 0.1  # spread over the ring, not one value
    with torch.no_grad():
        recurrence.nu.copy_(torch.linspace(-30, 3, 64))  # any real nu: 0 < a < 1
    assert ((recurrence.decay() > 0) & (recurrence.decay() <= 1)).all()


def test_deterministic_by_seed_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = _build(seed=2).state_dict(), _build(seed=2).state_dict(), _build(seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.recurrence.nu"], c["blocks.0.recurrence.nu"])


def _sample_std_close(weight, expected):
    """Sample std of n iid N(0, s^2) draws has relative standard error 1/sqrt(2n); allow 5."""
    if expected == 0.0:
        return bool((weight == 0).all())
    return abs(weight.std().item() - expected) / expected < 5 / math.sqrt(2 * weight.numel())


# width 128, base 32 (m = 4), state ratio 0.5 (P = 64), mlp ratio 2 (256 hidden units)
EXPECTED = {  # (B, C, down, readout) -> (std, multiplier) by hand
    "sp": [(128**-0.5, 1.0), (64**-0.5, 1.0), (256**-0.5, 1.0), (128**-0.5, 1.0)],
    "ntk": [(1.0, 128**-0.5), (1.0, 64**-0.5), (1.0, 256**-0.5), (1.0, 128**-0.5)],
    "mup": [(128**-0.5, 1.0), (64**-0.5, 1.0), (256**-0.5, 1.0), (0.0, 0.25)],
}


@pytest.mark.parametrize("parameterization", ["sp", "ntk", "mup"])
def test_init_std_and_multipliers_follow_the_table(parameterization):
    model = _build(width=128, base_width=32, state_ratio=0.5, mlp_ratio=2, parameterization=parameterization)
    block = model.blocks[1]
    layers = [block.recurrence.in_proj, block.recurrence.out_proj, block.down, model.readout]
    for layer, (std, multiplier) in zip(layers, EXPECTED[parameterization]):
        assert _sample_std_close(layer.weight.detach(), std), (layer.weight.std().item(), std)
        assert layer.multiplier == pytest.approx(multiplier, rel=1e-12)
    assert _sample_std_close(model.token_embedding.detach(), 1.0)


def test_lr_multipliers_match_the_table():
    """muP at m = 4: Adam / m for B, C and MLP weights; SGD x m for embedding, nu, layer norms,
    biases and readout (TP V Table 3 / 8)."""
    spec = LinearRecurrenceSpec(width=128, base_width=32, parameterization="mup")
    model = build_linear_recurrence(spec, (10,), V, V, 0)
    adam = linear_recurrence_lr_multipliers(spec, model, "adam")
    sgd = linear_recurrence_lr_multipliers(spec, model, "sgd")
    assert set(adam) == {n for n, _ in model.named_parameters()}
    matrices = (".in_proj.weight", ".out_proj.weight", ".up.weight", ".down.weight")
    for name in adam:
        assert adam[name] == pytest.approx(0.25 if name.endswith(matrices) else 1.0, rel=1e-12), name
        assert sgd[name] == pytest.approx(1.0 if name.endswith(matrices) else 4.0, rel=1e-12), name
    assert sgd["blocks.0.recurrence.nu"] == 4.0 and adam["readout.weight"] == 1.0
    with pytest.raises(InputError, match="not a parameter"):
        linear_recurrence_lr_multipliers(spec, torch.nn.Linear(2, 2), "sgd")


def test_mup_equals_sp_at_base_width():
    sp_spec = LinearRecurrenceSpec(width=32, base_width=32)
    mup_spec = LinearRecurrenceSpec(width=32, base_width=32, parameterization="mup", zero_init_readout=False)
    sp, mup = (build_linear_recurrence(s, (10,), V, V, 4) for s in (sp_spec, mup_spec))
    assert all(torch.equal(a, b) for a, b in zip(sp.state_dict().values(), mup.state_dict().values()))
    assert torch.equal(sp(_tokens()), mup(_tokens()))
    for family in ("sgd", "adam"):
        assert linear_recurrence_lr_multipliers(sp_spec, sp, family) == linear_recurrence_lr_multipliers(
            mup_spec, mup, family)


def test_forward_vmaps_over_stacked_members():
    models = [build_linear_recurrence(LinearRecurrenceSpec(width=16, output_multiplier=1.0 + k), (10,), V, V, k)
              for k in range(3)]
    params, buffers = stack_module_state(models)
    x = _tokens()

    def call(p, b, tokens):
        return functional_call(models[0], (p, b), (tokens,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-5, rtol=1e-5)  # float32, batched einsum order
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-2)


def test_double_backward():
    model = _build(depth=1)
    loss = model(_tokens()).square().mean()
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hvp = torch.autograd.grad(sum((g * g).sum() for g in grads), params)
    assert all(torch.isfinite(h).all() for h in hvp)


def test_bad_specs_and_inputs():
    with pytest.raises(ValidationError, match="exceeds"):
        LinearRecurrenceSpec(a_min=0.9, a_max=0.5)
    with pytest.raises(ValidationError):
        LinearRecurrenceSpec(a_max=1.0)  # a = 1 is not stable
    spec = LinearRecurrenceSpec(width=16)
    with pytest.raises(InputError, match=r"\(N, T\)"):
        build_linear_recurrence(spec, (10, 2), V, V, 0)
    with pytest.raises(InputError, match="vocabulary size"):
        build_linear_recurrence(spec, (10,), V, None, 0)
    with pytest.raises(InputError, match="differs"):
        build_linear_recurrence(LinearRecurrenceSpec(width=16, vocab=5), (10,), V, V, 0)
