import sys
import textwrap

import pytest
import torch
from pydantic import ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models.factory import FactorySpec, build_factory, call_factory, factory_lr_multipliers, load_factory

SOURCE = textwrap.dedent('''
    import torch

    def net(width=8, depth=1):
        layers = [torch.nn.Linear(4, width), torch.nn.Tanh()]
        for _ in range(depth - 1):
            layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(width, 3))

    class Namespace:
        @staticmethod
        def make():
            return torch.nn.Linear(2, 2)

    def bad():
        raise ValueError("width must be\\npositive")

    def not_a_model():
        return 3

    NOT_CALLABLE = 5
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = "lmech_test_user_factories"
    (tmp_path / f"{name}.py").write_text(SOURCE)
    (tmp_path / "lmech_test_broken_module.py").write_text("raise RuntimeError('broken at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in (name, "lmech_test_broken_module"):
        sys.modules.pop(module, None)


def test_builds_with_kwargs_deterministically_and_keeps_the_global_rng(user_module):
    spec = FactorySpec(factory=f"{user_module}:net", kwargs={"width": 16, "depth": 2})
    state = torch.get_rng_state()
    a, b, c = (build_factory(spec, (4,), 3, None, seed) for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # nn.Linear draws from the global RNG, forked
    assert a[0].weight.shape == (16, 4) and len(a) == 5
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[0].weight, c[0].weight)


def test_dotted_attribute_and_current_directory(user_module, tmp_path, monkeypatch):
    assert isinstance(load_factory(f"{user_module}:Namespace.make")(), torch.nn.Linear)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "lmech_test_cwd_factory.py").write_text("import torch\ndef f():\n    return torch.nn.ReLU()\n")
    monkeypatch.chdir(tmp_path / "sub")
    try:
        assert isinstance(call_factory("lmech_test_cwd_factory:f"), torch.nn.ReLU)
    finally:
        sys.modules.pop("lmech_test_cwd_factory", None)
    assert str(tmp_path / "sub") not in sys.path


@pytest.mark.parametrize("factory, fragment", [
    ("lmech_no_such_module_xyz:net", "cannot import module 'lmech_no_such_module_xyz'"),
    ("lmech_test_broken_module:f", "importing 'lmech_test_broken_module' raised RuntimeError: broken at import"),
    ("{m}:missing", "has no attribute 'missing'"),
    ("{m}:NOT_CALLABLE", "is not callable"),
    ("{m}:bad", r"^model factory '\S+:bad' raised ValueError: width must be positive$"),
    ("{m}:not_a_model", "returned int, not a torch.nn.Module"),
    ("{m}:net", "raised TypeError: .*unexpected keyword argument 'colour'"),
])
def test_failures_are_one_input_error_line(user_module, factory, fragment):
    kwargs = {"colour": 1} if factory.endswith(":net") else {}
    with pytest.raises(InputError, match=fragment) as caught:
        call_factory(factory.format(m=user_module), kwargs, seed=0)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("factory", ["no_colon", "pkg.mod:", ":f", "pkg..mod:f", "1pkg:f", "os:system('ls')",
                                     "pkg.mod:f g", "pkg/mod:f", "pkg.mod:f:g"])
def test_malformed_factory_strings_are_rejected_before_any_import(factory):
    with pytest.raises(ValidationError, match="expected 'package.module:function'"):
        FactorySpec(factory=factory)
    with pytest.raises(InputError, match="^model factory: expected 'package.module:function'"):
        load_factory(factory)
    with pytest.raises(InputError, match="^data function: expected"):
        load_factory(factory, role="data function")


def test_spec_is_strict():
    with pytest.raises(ValidationError, match="extra"):
        FactorySpec(factory="a:b", args=[1])
    assert FactorySpec(factory="a.b:c").kwargs == {}


def test_init_scale_multiplies_matrices_only_and_lr_multipliers_are_one(user_module):
    spec = FactorySpec(factory=f"{user_module}:net")
    one, two = build_factory(spec, (4,), 3, None, 0), build_factory(spec, (4,), 3, None, 0, init_scale=2.0)
    for (name, a), (_, b) in zip(one.named_parameters(), two.named_parameters()):
        assert torch.equal(b, a * (2.0 if a.dim() >= 2 else 1.0)), name
    multipliers = factory_lr_multipliers(spec, one, "adam")
    assert multipliers == {name: 1.0 for name, _ in one.named_parameters()}


def test_members_vmap(user_module):
    spec = FactorySpec(factory=f"{user_module}:net")
    models = [build_factory(spec, (4,), 3, None, k) for k in range(3)]
    params, buffers = stack_module_state(models)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))

    def call(p, b, inputs):
        return functional_call(models[0], (p, b), (inputs,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-6)  # float32
