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


# ---- multiplicative mixers (gated: H3 / BaseConv style; outer: linear attention with decay) ----

def test_default_mixer_leaves_forward_pass_and_run_id_unchanged():
    """Reference values recorded from commit 2f890e0 (before the `mixer` field existed): the default
    (diagonal) model's logits on fixed tokens and a default run id must be bit-identical."""
    from lmech.spec import RunSpec
    from lmech.tasks.associative_recall import AssociativeRecallSpec

    spec = LinearRecurrenceSpec(width=16)
    out = build_linear_recurrence(spec, (10,), 12, 12, 0)(
        torch.randint(0, 12, (3, 10), generator=torch.Generator().manual_seed(0)))
    assert out.double().sum().item() == -5.935585694853216
    assert out.double().abs().sum().item() == 260.63094976963475
    assert "mixer" not in spec.model_dump(mode="json", context={"run_id": True})
    assert spec.model_dump(mode="json")["mixer"] == "diagonal"  # other dumps keep it (--set, sweep axes)
    run = RunSpec(task=AssociativeRecallSpec(vocab_size=34, n_pairs=4, n_queries=4, seq_len=16),
                  model=LinearRecurrenceSpec(width=32))
    assert run.id == "67c6d73b0d6a4cd5"
    gated = RunSpec(task=run.task, model=LinearRecurrenceSpec(width=32, mixer="gated"))
    assert gated.id != run.id  # negative control: a set mixer is part of the id


def _gated_loop(x, block):
    """The gated block step by step in float64: s_t = a * s_(t-1) + (K x_(t-1)) * (V x_t),
    y_t = C (Q x_t * s_t), x_0 -> 0."""
    a = block.decay().double()
    s = torch.zeros(x.shape[0], a.shape[0], dtype=torch.float64)
    prev = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        s = a * s + block.k_proj(prev) * block.v_proj(x[:, t])
        out.append(block.out_proj(block.q_proj(x[:, t]) * s))
        prev = x[:, t]
    return torch.stack(out, dim=1)


def _outer_loop(x, block):
    """The outer-product block step by step in float64: S_t = diag(a) S_(t-1) + k_t v_t^T (P x H),
    y_t = W_o S_t^T q_t / sqrt(P)."""
    a = block.decay().double()
    state = torch.zeros(x.shape[0], a.shape[0], x.shape[-1], dtype=torch.float64)
    prev = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        state = a[:, None] * state + block.k_proj(prev)[:, :, None] * block.v_proj(x[:, t])[:, None, :]
        q = block.q_proj(x[:, t]) * block.scale
        out.append(block.out_proj(torch.einsum("np,nph->nh", q, state)))
        prev = x[:, t]
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("mixer, loop", [("gated", _gated_loop), ("outer", _outer_loop)])
def test_multiplicative_mixers_equal_the_loop_over_time_in_float64(mixer, loop):
    """Closed form (one (T, T, P) decay tensor) vs the recurrence step by step, float64, T = 40:
    an exact identity up to rounding of sums of 40 terms, tolerance 1e-10."""
    model = _build(width=16, state_ratio=0.5, mixer=mixer, a_min=0.3, a_max=0.999).double()
    block = model.blocks[0].recurrence
    x = torch.randn(3, 40, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        assert (block(x) - loop(x, block)).abs().max() < 1e-10
        block.nu.add_(0.05)  # negative control: other decays give another output
        other = block(x)
        block.nu.sub_(0.05)
        assert (other - loop(x, block)).abs().max() > 1e-4


@pytest.mark.parametrize("mixer", ["gated", "outer"])
def test_multiplicative_mixers_are_causal_vmap_and_have_roles(mixer):
    model = _build(mixer=mixer)
    x = _tokens(n=1)
    y = x.clone()
    y[0, 6] = (y[0, 6] + 1) % V
    a, b = model(x), model(y)
    assert torch.equal(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-3
    spec = LinearRecurrenceSpec(width=16, mixer=mixer, parameterization="mup", base_width=4)
    model = build_linear_recurrence(spec, (10,), V, V, 0)
    adam = linear_recurrence_lr_multipliers(spec, model, "adam")
    assert set(adam) == {n for n, _ in model.named_parameters()}
    assert adam["blocks.0.recurrence.k_proj.weight"] == pytest.approx(0.25)
    models = [build_linear_recurrence(LinearRecurrenceSpec(width=16, mixer=mixer), (10,), V, V, k) for k in range(2)]
    params, buffers = stack_module_state(models)
    stacked = vmap(lambda p, b_, t: functional_call(models[0], (p, b_), (t,)), in_dims=(0, 0, None))(
        params, buffers, _tokens())
    for k, m in enumerate(models):
        assert torch.allclose(stacked[k], m(_tokens()), atol=1e-5, rtol=1e-5)


def test_gated_state_has_p_numbers():
    model = _build(width=16, state_ratio=0.25, mixer="gated")
    block = model.blocks[0].recurrence
    assert block.q_proj.weight.shape == block.k_proj.weight.shape == block.v_proj.weight.shape == (4, 16)
    assert block.out_proj.weight.shape == (16, 4) and block.nu.shape == (4,)
    with pytest.raises(ValidationError):
        LinearRecurrenceSpec(mixer="softmax")
