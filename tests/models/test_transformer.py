import math

import pytest
import torch
from pydantic import ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models.transformer import (
    TransformerSpec,
    _rotary,
    build_transformer,
    transformer_lr_multipliers,
)

V = 16


def _tokens(n=3, t=8, seed=0):
    return torch.randint(0, V, (n, t), generator=torch.Generator().manual_seed(seed))


def _build(seed=0, t=8, output_dim=V, **fields):
    fields.setdefault("width", 32)
    fields.setdefault("context", 8)
    return build_transformer(TransformerSpec(**fields), (t,), output_dim, V, seed)


@pytest.mark.parametrize("fields", [
    {}, {"positions": "rotary"}, {"positions": "none"}, {"tie_embeddings": True},
    {"attention_only": True}, {"depth": 0}, {"bias": False, "mlp_ratio": 2.5},
])
def test_shapes_and_parameter_sets(fields):
    model = _build(**fields)
    out = model(_tokens(t=5))  # T = 5 < context 8
    assert out.shape == (3, 5, V) and out.dtype == torch.float32 and torch.isfinite(out).all()
    names = {name for name, _ in model.named_parameters()}
    assert ("position_embedding" in names) == (fields.get("positions", "learned") == "learned")
    assert ("readout.weight" in names) == (not fields.get("tie_embeddings", False))
    assert any(".mlp." in n for n in names) == (not fields.get("attention_only") and fields.get("depth", 2) > 0)
    assert any(n.endswith(".bias") for n in names) == fields.get("bias", True)
    if "mlp_ratio" in fields:
        assert model.blocks[0].mlp.up.weight.shape == (80, 32)  # round(2.5 * 32)


def test_output_dim_may_differ_from_vocab():
    assert _build(output_dim=3)(_tokens()).shape == (3, 8, 3)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_attention_is_causal(positions):
    """Changing token t changes no logit before t, and (negative control) does change logits at t."""
    model = _build(positions=positions)
    x = _tokens(n=1)
    y = x.clone()
    y[0, 5] = (y[0, 5] + 1) % V
    a, b = model(x), model(y)
    assert torch.equal(a[:, :5], b[:, :5])
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-3


def test_rotary_scores_depend_only_on_relative_position():
    """RoPE: <R_i q, R_j k> is a function of i - j; the same vectors at every position, float64."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64).expand(1, 1, 6, 8)
    k = torch.randn(1, 1, 1, 8, generator=g, dtype=torch.float64).expand(1, 1, 6, 8)
    scores = (_rotary(q) @ _rotary(k).transpose(-2, -1))[0, 0]  # (T, T)
    for shift in range(-5, 6):
        diagonal = torch.diagonal(scores, shift)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-12)  # exact identity
    assert (scores[0, 1] - scores[0, 2]).abs() > 1e-3  # negative control: it is not constant


def test_deterministic_by_seed_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = _build(seed=7).state_dict(), _build(seed=7).state_dict(), _build(seed=8).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attention.key.weight"], c["blocks.0.attention.key.weight"])


def _sample_std_close(weight, expected):
    """Sample std of n iid N(0, s^2) draws has relative standard error 1/sqrt(2n); allow 5."""
    if expected == 0.0:
        return bool((weight == 0).all())
    return abs(weight.std().item() - expected) / expected < 5 / math.sqrt(2 * weight.numel())


# width 128, base width 32 (m = 4), 4 heads (d = 32, d0 = 8), mlp width 512, V = 16
H, M, D, D0 = 128, 4.0, 32, 8
EXPECTED = {  # parameter: (init std, forward multiplier) by hand from the module docstring's table
    "sp": {"token_embedding": (1.0, None), "query": (H**-0.5, 1.0), "key": (H**-0.5, 1.0),
           "up": (H**-0.5, 1.0), "down": (512**-0.5, 1.0), "readout": (H**-0.5, 1.0)},
    "ntk": {"token_embedding": (1.0, None), "query": (1.0, H**-0.5), "key": (1.0, H**-0.5),
            "up": (1.0, H**-0.5), "down": (1.0, 512**-0.5), "readout": (1.0, H**-0.5)},
    "mup": {"token_embedding": (1.0, None), "query": (0.0, 1.0), "key": (H**-0.5, 1.0),
            "up": (H**-0.5, 1.0), "down": (512**-0.5, 1.0), "readout": (0.0, 1 / M)},
}
SCALE = {"sp": D**-0.5, "ntk": D**-0.5, "mup": math.sqrt(D0) / D}


@pytest.mark.parametrize("parameterization", ["sp", "ntk", "mup"])
def test_init_std_multipliers_and_attention_scale_follow_the_table(parameterization):
    model = _build(width=H, base_width=32, heads=4, parameterization=parameterization)
    block = model.blocks[1]
    layers = {"query": block.attention.query, "key": block.attention.key, "up": block.mlp.up,
              "down": block.mlp.down, "readout": model.readout}
    for name, (std, multiplier) in EXPECTED[parameterization].items():
        weight = model.token_embedding if name == "token_embedding" else layers[name].weight
        assert _sample_std_close(weight.detach(), std), (name, weight.std().item(), std)
        if multiplier is not None:
            assert layers[name].multiplier == pytest.approx(multiplier, rel=1e-12)
    assert block.attention.scale == pytest.approx(SCALE[parameterization], rel=1e-12)
    assert torch.equal(block.ln_attention.weight, torch.ones(H))


def test_embedding_std_and_init_scale_multiply_weights_exactly():
    one = _build(embedding_std=0.5)
    two = build_transformer(TransformerSpec(width=32, context=8, embedding_std=0.5), (8,), V, V, 0,
                            init_scale=2.0)
    assert _sample_std_close(one.token_embedding.detach(), 0.5)
    for (name, a), (_, b) in zip(one.named_parameters(), two.named_parameters()):
        factor = 1.0 if ("ln_" in name or name.endswith(".bias")) else 2.0
        assert torch.equal(b, a * factor), name  # a power of two: exact in float32


def _hand_lr_table(family):
    """muP at m = 4 (TP V Table 3 / 8, mup's MuAdam and MuSGD): Adam divides hidden weights by m;
    SGD multiplies embeddings, layer norms, biases and the readout by m."""
    hidden = (".query.weight", ".key.weight", ".value.weight", ".out.weight", ".up.weight", ".down.weight")
    if family == "adam":
        return lambda name: 1 / M if name.endswith(hidden) else 1.0
    return lambda name: 1.0 if name.endswith(hidden) else M


@pytest.mark.parametrize("family", ["sgd", "adam"])
def test_lr_multipliers_match_the_table(family):
    spec = TransformerSpec(width=H, base_width=32, context=8, parameterization="mup")
    model = build_transformer(spec, (8,), V, V, 0)
    got = transformer_lr_multipliers(spec, model, family)
    assert set(got) == {name for name, _ in model.named_parameters()}
    expected = _hand_lr_table(family)
    for name, value in got.items():
        assert value == pytest.approx(expected(name), rel=1e-12), name
    assert got["blocks.0.attention.query.weight"] == pytest.approx(1.0 if family == "sgd" else 0.25)
    assert got["token_embedding"] == pytest.approx(4.0 if family == "sgd" else 1.0)
    for other in ("sp", "ntk"):
        spec = TransformerSpec(width=H, base_width=32, context=8, parameterization=other)
        assert set(transformer_lr_multipliers(spec, model, family).values()) == {1.0}
    with pytest.raises(InputError, match="not a parameter"):
        transformer_lr_multipliers(spec, torch.nn.Linear(2, 2), family)


@pytest.mark.parametrize("tie", [False, True])
def test_mup_equals_sp_at_base_width(tie):
    """Without muP's zero inits, muP at width = base_width is SP: same weights, outputs, lr multipliers."""
    common = {"width": 32, "base_width": 32, "context": 8, "tie_embeddings": tie}
    sp_spec = TransformerSpec(parameterization="sp", **common)
    mup_spec = TransformerSpec(parameterization="mup", zero_init_query=False,
                               zero_init_readout=None if tie else False, **common)
    sp, mup = (build_transformer(s, (8,), V, V, 3) for s in (sp_spec, mup_spec))
    assert all(torch.equal(a, b) for a, b in zip(sp.state_dict().values(), mup.state_dict().values()))
    assert torch.equal(sp(_tokens()), mup(_tokens()))
    for family in ("sgd", "adam"):
        assert transformer_lr_multipliers(sp_spec, sp, family) == transformer_lr_multipliers(mup_spec, mup, family)
    # negative control: muP's default zero inits do change the model
    default = build_transformer(TransformerSpec(parameterization="mup", **common), (8,), V, V, 3)
    assert not torch.equal(default.blocks[0].attention.query.weight, sp.blocks[0].attention.query.weight)


@pytest.mark.parametrize("fields", [{}, {"positions": "rotary", "tie_embeddings": True},
                                    {"attention_only": True, "parameterization": "mup", "zero_init_readout": False}])
def test_forward_vmaps_over_stacked_members(fields):
    """stack_module_state + vmap(functional_call) equals calling each member, incl. per-member output multipliers."""
    models = [build_transformer(TransformerSpec(width=32, context=8, output_multiplier=0.5 + k, **fields),
                                (8,), V, V, seed=k) for k in range(3)]
    params, buffers = stack_module_state(models)
    x = _tokens()

    def call(p, b, tokens):
        return functional_call(models[0], (p, b), (tokens,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-5, rtol=1e-5)  # float32, batched matmul order
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-2)  # members differ


def test_output_multiplier_scales_logits():
    assert torch.equal(_build(output_multiplier=4.0)(_tokens()), 4.0 * _build()(_tokens()))


def test_double_backward_and_dropout():
    model = _build(depth=1)
    x = _tokens()
    loss = model(x).square().mean()
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, create_graph=True)
    hvp = torch.autograd.grad(sum((g * g).sum() for g in grads), params)  # needs double backward
    assert all(torch.isfinite(h).all() for h in hvp)
    noisy = _build(dropout=0.5)
    assert torch.equal(noisy.eval()(x), noisy(x))  # eval mode: no dropout
    noisy.train()
    torch.manual_seed(0)
    assert not torch.equal(noisy(x), noisy.eval()(x))


def test_bad_specs_and_inputs():
    with pytest.raises(ValidationError, match="multiples of model.heads"):
        TransformerSpec(width=30, heads=4)
    with pytest.raises(ValidationError, match="even head size"):
        TransformerSpec(width=12, heads=4, positions="rotary", base_width=12)
    with pytest.raises(ValidationError, match="extra"):
        TransformerSpec(widht=32)
    with pytest.raises(ValidationError, match="tied readout"):
        TransformerSpec(tie_embeddings=True, zero_init_readout=True)
    spec = TransformerSpec(width=32, context=8)
    with pytest.raises(InputError, match="exceeds model.context"):
        build_transformer(spec, (9,), V, V, 0)
    with pytest.raises(InputError, match=r"\(N, T\)"):
        build_transformer(spec, (8, 2), V, V, 0)
    with pytest.raises(InputError, match="vocabulary size"):
        build_transformer(spec, (8,), V, None, 0)
    with pytest.raises(InputError, match="tied embeddings"):
        build_transformer(TransformerSpec(width=32, context=8, tie_embeddings=True), (8,), 3, V, 0)


# --- coordinate check (TP V; the mup README's "coord check") ------------------------------------

WIDTHS = [32, 64, 128, 256, 512]


def _coordinates(parameterization, width, lr=1e-2, vocab=8):
    """RMS of each block's output and of the logits after 5 Adam steps (lr x multiplier per
    parameter) on one fixed batch of 8 sequences of 8 tokens; target = next token id + 1 mod 8."""
    spec = TransformerSpec(width=width, heads=4, depth=2, context=8, base_width=32,
                           parameterization=parameterization)
    model = build_transformer(spec, (8,), vocab, vocab, seed=0)
    multipliers = transformer_lr_multipliers(spec, model, "adam")
    optimizer = torch.optim.Adam([{"params": [p], "lr": lr * multipliers[n]} for n, p in model.named_parameters()])
    g = torch.Generator().manual_seed(123)
    x = torch.randint(0, vocab, (8, 8), generator=g)
    y = (x + 1) % vocab
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rms = {}

    def record(k):
        return lambda _module, _inputs, out: rms.__setitem__(f"block{k}", out.pow(2).mean().sqrt().item())

    hooks = [block.register_forward_hook(record(k)) for k, block in enumerate(model.blocks)]
    with torch.no_grad():
        rms["logits"] = model(x).pow(2).mean().sqrt().item()
    for hook in hooks:
        hook.remove()
    return rms


def _slope(values):
    """Least-squares slope of log(value) against log(width)."""
    lx = [math.log(w) for w in WIDTHS]
    ly = [math.log(v) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def test_coordinate_check_mup_is_flat_and_sp_grows():
    """muP: every block's output and the logits keep their scale from width 32 to 512
    (|slope| <= 0.1; measured -0.05..0.03 over seeds 0-3). SP with the same Adam lr: the logits
    grow (slope > 0.3; measured 0.43-0.47) and hidden activations more (> 0.5; measured 1.08-1.29).
    The bound 0.1 leaves room for the 1/sqrt(width) finite-width variance at width 32."""
    slopes = {}
    for parameterization in ("mup", "sp"):
        rows = [_coordinates(parameterization, width) for width in WIDTHS]
        slopes[parameterization] = {key: _slope([row[key] for row in rows]) for key in rows[0]}
    assert all(abs(s) <= 0.1 for s in slopes["mup"].values()), slopes
    assert slopes["sp"]["logits"] > 0.3, slopes
    assert slopes["sp"]["block1"] > 0.5, slopes
