"""Contract suite: every model family, through `build_model` and `lr_multipliers`."""

import math

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models import (
    FAMILIES,
    AnyModelSpec,
    CNNSpec,
    FactorySpec,
    LinearRecurrenceSpec,
    ModelSpec,
    ResMLPSpec,
    TransformerSpec,
    build_model,
    lr_multipliers,
)

V = 10
CASES = {  # name: (spec, input_shape, output_dim, vocab_size, output shape of one example)
    "mlp": (ModelSpec(width=8), (6,), 3, None, (3,)),
    "deep_linear": (ModelSpec(kind="deep_linear", activation="linear", bias=False, width=8), (6,), 3, None, (3,)),
    "transformer": (TransformerSpec(width=16, context=8), (8,), V, V, (8, V)),
    "cnn_1d": (CNNSpec(width=4), (40,), 3, None, (3,)),
    "cnn_2d": (CNNSpec(dim=2, width=4), (64,), 3, None, (3,)),
    "resmlp": (ResMLPSpec(width=8, depth=2), (6,), 3, None, (3,)),
    "linear_recurrence": (LinearRecurrenceSpec(width=8), (8,), V, V, (8, V)),
    "factory": (FactorySpec(factory="torch.nn:Linear", kwargs={"in_features": 6, "out_features": 3}),
                (6,), 3, None, (3,)),
}


def _inputs(input_shape, vocab_size, n=4):
    g = torch.Generator().manual_seed(0)
    if vocab_size is not None:
        return torch.randint(0, vocab_size, (n, *input_shape), generator=g)
    return torch.randn(n, *input_shape, generator=g)


def _build(case, seed=0):
    spec, input_shape, output_dim, vocab_size, _ = CASES[case]
    return build_model(spec, input_shape, output_dim, vocab_size, seed)


def test_every_family_has_a_case():
    kinds = {spec.kind for spec, *_ in CASES.values()}
    assert kinds == set(FAMILIES)


@pytest.mark.parametrize("case", CASES)
def test_finite_output_of_the_declared_shape(case):
    spec, input_shape, _, vocab_size, out_shape = CASES[case]
    out = _build(case)(_inputs(input_shape, vocab_size))
    assert out.shape == (4, *out_shape) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("case", CASES)
def test_seed_deterministic_and_global_rng_untouched(case):
    state = torch.get_rng_state()
    a, b, c = (_build(case, seed).state_dict() for seed in (1, 1, 2))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k_members", [1, 3])
def test_stacked_members_equal_one_by_one(case, k_members):
    spec, input_shape, _, vocab_size, _ = CASES[case]
    models = [_build(case, seed) for seed in range(k_members)]
    params, buffers = stack_module_state(models)
    x = _inputs(input_shape, vocab_size)

    def call(p, b, inputs):
        return functional_call(models[0], (p, b), (inputs,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    assert stacked.shape[0] == k_members
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-5, rtol=1e-5)  # float32, batched op order


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("family", ["sgd", "adam"])
def test_lr_multipliers_cover_every_parameter(case, family):
    spec = CASES[case][0]
    model = _build(case)
    multipliers = lr_multipliers(spec, model, family)
    assert set(multipliers) == {name for name, _ in model.named_parameters()}
    assert all(math.isfinite(v) and v > 0 for v in multipliers.values())


def test_mlp_lr_multipliers_come_from_the_mlp_table():
    spec = ModelSpec(width=256, base_width=64, parameterization="mup")
    model = build_model(spec, (6,), 3, None, 0)
    assert lr_multipliers(spec, model, "adam") == {"weights.W0": 1.0, "weights.b0": 1.0, "weights.W1": 0.25,
                                                   "weights.b1": 1.0, "weights.W2": 1.0, "weights.b2": 1.0}


def test_specs_parse_from_dicts_by_kind():
    adapter = TypeAdapter(AnyModelSpec)
    assert isinstance(adapter.validate_python({"kind": "transformer", "width": 16}), TransformerSpec)
    assert isinstance(adapter.validate_python({"kind": "deep_linear", "activation": "linear", "bias": False}),
                      ModelSpec)
    assert adapter.validate_python({"kind": "factory", "factory": "a.b:c"}).factory == "a.b:c"
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        adapter.validate_python({"kind": "rnn"})
    with pytest.raises(ValidationError, match="extra"):
        adapter.validate_python({"kind": "cnn", "widht": 3})


def test_a_spec_of_no_family_is_an_input_error():
    with pytest.raises(InputError, match="unknown model kind"):
        build_model(TypeAdapter(AnyModelSpec).validate_python({"kind": "cnn"}).model_copy(update={"kind": "rnn"}),
                    (40,), 3, None, 0)
    with pytest.raises(InputError, match="real features"):
        build_model(ModelSpec(), (8, 8), 3, None, 0)
