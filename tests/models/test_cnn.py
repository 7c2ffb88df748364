import math

import pytest
import torch
from pydantic import ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models._layers import check_optimizer_family
from lmech.models.cnn import CNNSpec, build_cnn, cnn_lr_multipliers


def _x(shape, n=5, seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def _reference(model, spec, x):
    """The same network from torch.nn layers (weights copied), float64."""
    conv = torch.nn.Conv1d if spec.dim == 1 else torch.nn.Conv2d
    pool = {"max": (torch.nn.MaxPool1d, torch.nn.MaxPool2d), "avg": (torch.nn.AvgPool1d, torch.nn.AvgPool2d)}
    h = x.double().reshape(x.shape[0], *model.layout)
    for layer, pooled in zip(model.convs, model.pool_after):
        ref = conv(layer.weight.shape[1], layer.weight.shape[0], layer.weight.shape[-1],
                   padding=layer.weight.shape[-1] // 2).double()
        with torch.no_grad():
            ref.weight.copy_(layer.weight * layer.multiplier)
            ref.bias.copy_(layer.bias)
        h = torch.relu(ref(h))
        if pooled:
            h = pool[spec.pool][spec.dim - 1](spec.pool_size)(h)
    w = model.readout.weight.double() * model.readout.multiplier
    return h.flatten(1) @ w.T + model.readout.bias.double()


@pytest.mark.parametrize("dim, shape, pool", [(1, (40,), "max"), (1, (2, 40), "avg"), (2, (64,), "max"),
                                              (2, (3, 8, 8), "none"), (2, (6, 10), "avg")])
def test_matches_torch_nn_layers(dim, shape, pool):
    spec = CNNSpec(dim=dim, width=8, depth=3, pool=pool, parameterization="ntk")
    model = build_cnn(spec, shape, 10, None, seed=0)
    x = _x(shape)
    out = model(x)
    assert out.shape == (5, 10) and out.dtype == torch.float32
    assert torch.allclose(out.double(), _reference(model, spec, x), atol=1e-5)  # float32 vs float64


def test_pooling_stops_when_the_map_is_too_small():
    model = build_cnn(CNNSpec(dim=2, width=4, depth=4), (64,), 3, None, 0)  # 8 -> 4 -> 2 -> 1 -> 1
    assert model.pool_after == (True, True, True, False)
    assert model.readout.weight.shape == (3, 4)


def test_flattened_square_image_equals_the_image():
    spec = CNNSpec(dim=2, width=4)
    flat, image = build_cnn(spec, (64,), 3, None, 1), build_cnn(spec, (1, 8, 8), 3, None, 1)
    x = _x((64,))
    assert torch.equal(flat(x), image(x.reshape(5, 1, 8, 8)))


def test_deterministic_by_seed_and_global_rng_untouched():
    state = torch.get_rng_state()
    spec = CNNSpec(width=8)
    a, b, c = (build_cnn(spec, (40,), 10, None, s).state_dict() for s in (3, 3, 4))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["convs.1.weight"], c["convs.1.weight"])


def _sample_std_close(weight, expected):
    """Sample std of n iid N(0, s^2) draws has relative standard error 1/sqrt(2n); allow 5."""
    if expected == 0.0:
        return bool((weight == 0).all())
    return abs(weight.std().item() - expected) / expected < 5 / math.sqrt(2 * weight.numel())


# 1-D, width 128, base width 32 (m = 4), kernel 5, input (N, 40) -> pools 40 -> 20 -> 10
G = math.sqrt(2.0)  # ReLU gain
EXPECTED = {  # (first conv, hidden conv, readout): (init std, forward multiplier), by hand
    "sp": [(G / math.sqrt(5), 1.0), (G / math.sqrt(640), 1.0), (1 / math.sqrt(1280), 1.0)],
    "ntk": [(1.0, G / math.sqrt(5)), (1.0, G / math.sqrt(640)), (1.0, 1 / math.sqrt(1280))],
    "mup": [(G / math.sqrt(5), 1.0), (G / math.sqrt(640), 1.0), (0.0, 0.25)],
}


@pytest.mark.parametrize("parameterization", ["sp", "ntk", "mup"])
def test_init_std_and_multipliers_follow_the_table(parameterization):
    spec = CNNSpec(width=128, base_width=32, kernel_size=5, parameterization=parameterization)
    model = build_cnn(spec, (40,), 10, None, 0)
    layers = [model.convs[0], model.convs[1], model.readout]
    for layer, (std, multiplier) in zip(layers, EXPECTED[parameterization]):
        assert _sample_std_close(layer.weight.detach(), std), (layer.weight.std().item(), std)
        assert layer.multiplier == pytest.approx(multiplier, rel=1e-12)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_lr_multipliers_match_the_table():
    """muP at m = 4 (TP V Table 3 / 8; mup's MuSGD / MuAdam)."""
    spec = CNNSpec(width=128, base_width=32, parameterization="mup")
    model = build_cnn(spec, (40,), 10, None, 0)
    sgd = {"convs.0.weight": 4, "convs.0.bias": 4, "convs.1.weight": 1, "convs.1.bias": 4,
           "readout.weight": 4, "readout.bias": 1}
    adam = {"convs.0.weight": 1, "convs.0.bias": 1, "convs.1.weight": 0.25, "convs.1.bias": 1,
            "readout.weight": 1, "readout.bias": 1}
    assert cnn_lr_multipliers(spec, model, "sgd") == pytest.approx(sgd, rel=1e-12)
    assert cnn_lr_multipliers(spec, model, "adam") == pytest.approx(adam, rel=1e-12)
    sp = CNNSpec(width=128, base_width=32)
    assert set(cnn_lr_multipliers(sp, model, "adam").values()) == {1.0}
    with pytest.raises(InputError, match="not a parameter"):
        cnn_lr_multipliers(spec, torch.nn.Linear(2, 2), "sgd")
    with pytest.raises(InputError, match="'sgd' or 'adam'"):  # the public annotation is a Literal
        check_optimizer_family("lion")


def test_mup_equals_sp_at_base_width():
    sp = build_cnn(CNNSpec(width=32, base_width=32), (40,), 10, None, 2)
    mup_spec = CNNSpec(width=32, base_width=32, parameterization="mup", zero_init_readout=False)
    mup = build_cnn(mup_spec, (40,), 10, None, 2)
    assert all(torch.equal(a, b) for a, b in zip(sp.state_dict().values(), mup.state_dict().values()))
    assert torch.equal(sp(_x((40,))), mup(_x((40,))))
    assert cnn_lr_multipliers(mup_spec, mup, "adam") == cnn_lr_multipliers(CNNSpec(width=32, base_width=32), sp, "adam")
    default = build_cnn(CNNSpec(width=32, base_width=32, parameterization="mup"), (40,), 10, None, 2)
    assert torch.equal(default.readout.weight, torch.zeros_like(default.readout.weight))  # muP's zero readout


@pytest.mark.parametrize("dim, shape", [(1, (40,)), (2, (64,))])
def test_forward_vmaps_over_stacked_members(dim, shape):
    models = [build_cnn(CNNSpec(dim=dim, width=8, output_multiplier=1.0 + k), shape, 10, None, k)
              for k in range(3)]
    params, buffers = stack_module_state(models)
    x = _x(shape)

    def call(p, b, inputs):
        return functional_call(models[0], (p, b), (inputs,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-5, rtol=1e-5)  # float32, batched conv order
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-2)


def test_init_scale_and_output_multiplier():
    spec = CNNSpec(width=8, output_multiplier=3.0)
    one = build_cnn(spec, (40,), 10, None, 0)
    two = build_cnn(spec, (40,), 10, None, 0, init_scale=2.0)
    for (name, a), (_, b) in zip(one.named_parameters(), two.named_parameters()):
        assert torch.equal(b, a * (1.0 if name.endswith("bias") else 2.0)), name
    base = build_cnn(CNNSpec(width=8), (40,), 10, None, 0)
    assert torch.allclose(one(_x((40,))), 3.0 * base(_x((40,))), rtol=1e-6)


def test_bad_specs_and_inputs():
    with pytest.raises(ValidationError, match="odd"):
        CNNSpec(kernel_size=4)
    with pytest.raises(ValidationError, match="extra"):
        CNNSpec(channels=4)
    with pytest.raises(InputError, match="not a square"):
        build_cnn(CNNSpec(dim=2), (40,), 10, None, 0)
    with pytest.raises(InputError, match="cannot take inputs"):
        build_cnn(CNNSpec(dim=1), (2, 3, 4), 10, None, 0)
    with pytest.raises(InputError, match="not tokens"):
        build_cnn(CNNSpec(), (40,), 10, 16, 0)
