import math

import pytest
import torch
from pydantic import ValidationError
from torch.func import functional_call, stack_module_state, vmap

from lmech.errors import InputError
from lmech.models.resmlp import ResMLPSpec, build_resmlp, resmlp_lr_multipliers


def _x(n=32, d=16, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_forward_matches_the_formula_in_float64():
    """h_0 = W_in x + b; h_l = h_(l-1) + alpha W_2 relu(W_1 relu(h_(l-1)) + b_1) + alpha b_2; readout."""
    spec = ResMLPSpec(width=8, depth=3, block_depth=2, parameterization="ntk", branch_multiplier=0.7,
                      depth_scaling="depth_mup")
    model = build_resmlp(spec, (5,), 3, None, seed=0)
    for p in model.parameters():  # nonzero biases, so every term is exercised
        p.data += 0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
    x = _x(d=5).double()

    def dense(layer, h):
        return layer.multiplier * h @ layer.weight.double().T + layer.bias.double()

    alpha = 0.7 / math.sqrt(3)
    assert model.branch_scale == pytest.approx(alpha, rel=1e-12)
    h = dense(model.input, x)
    for block in model.blocks:
        z = h
        for layer in block.layers:
            z = dense(layer, torch.relu(z))
        h = h + alpha * z
    assert torch.allclose(model(x.float()).double(), dense(model.readout, h), atol=1e-5)  # float32 model


def test_shapes_and_depth_zero():
    assert build_resmlp(ResMLPSpec(width=8, depth=0), (16,), 3, None, 0)(_x()).shape == (32, 3)
    model = build_resmlp(ResMLPSpec(width=8, depth=2, bias=False, activation="abs"), (16,), 3, None, 0)
    assert model(_x()).shape == (32, 3) and not any(n.endswith("bias") for n, _ in model.named_parameters())


def test_deterministic_by_seed_and_global_rng_untouched():
    state = torch.get_rng_state()
    spec = ResMLPSpec(width=8)
    a, b, c = (build_resmlp(spec, (16,), 3, None, s).state_dict() for s in (5, 5, 6))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.1.layers.0.weight"], c["blocks.1.layers.0.weight"])


@pytest.mark.parametrize("activation", ["relu", "linear", "abs"])
def test_init_second_moment_follows_the_residual_recursion(activation):
    """E|h_L|^2 / E|h_0|^2 = (1 + alpha^2)^L at init (gain sqrt 2 for ReLU). Width 256, 64 inputs:
    the measured ratio fluctuates by about 7% (weights shared across inputs); allow 15%. The
    negative control (1 + alpha)^L differs by > 10x at L = 16."""
    spec = ResMLPSpec(width=256, depth=16, depth_scaling="depth_mup", activation=activation,
                      zero_init_readout=False)
    model = build_resmlp(spec, (16,), 4, None, 0)
    x = _x(n=64)
    with torch.no_grad():
        h = model.input(x)
        q0 = h.pow(2).mean().item()
        for block in model.blocks:
            h = h + model.branch_scale * block(h)
    ratio = h.pow(2).mean().item() / q0
    alpha = spec.branch_scale()
    assert abs(ratio / (1 + alpha**2) ** 16 - 1) < 0.15
    assert abs(ratio / (1 + alpha) ** 16 - 1) > 0.9


def _sample_std_close(weight, expected):
    """Sample std of n iid N(0, s^2) draws has relative standard error 1/sqrt(2n); allow 5."""
    if expected == 0.0:
        return bool((weight == 0).all())
    return abs(weight.std().item() - expected) / expected < 5 / math.sqrt(2 * weight.numel())


G = math.sqrt(2.0)
EXPECTED = {  # width 128, base 32 (m = 4), D = 16: (input, block, readout) -> (std, multiplier)
    "sp": [(1 / 4, 1.0), (G / math.sqrt(128), 1.0), (1 / math.sqrt(128), 1.0)],
    "ntk": [(1.0, 1 / 4), (1.0, G / math.sqrt(128)), (1.0, 1 / math.sqrt(128))],
    "mup": [(1 / 4, 1.0), (G / math.sqrt(128), 1.0), (0.0, 1 / 4)],
}


@pytest.mark.parametrize("parameterization", ["sp", "ntk", "mup"])
def test_init_std_and_multipliers_follow_the_table(parameterization):
    model = build_resmlp(ResMLPSpec(width=128, base_width=32, parameterization=parameterization), (16,), 10, None, 0)
    for layer, (std, multiplier) in zip([model.input, model.blocks[2].layers[0], model.readout],
                                        EXPECTED[parameterization]):
        assert _sample_std_close(layer.weight.detach(), std), (layer.weight.std().item(), std)
        assert layer.multiplier == pytest.approx(multiplier, rel=1e-12)


def test_lr_multipliers_match_the_tables():
    """muP (m = 4) times Depth-muP (L = 16, base 1: Adam block lr x 16^-1/2 = 1/4; SGD unchanged)."""
    spec = ResMLPSpec(width=128, base_width=32, depth=16, parameterization="mup", depth_scaling="depth_mup")
    model = build_resmlp(spec, (16,), 10, None, 0)
    adam = resmlp_lr_multipliers(spec, model, "adam")
    sgd = resmlp_lr_multipliers(spec, model, "sgd")
    assert set(adam) == set(sgd) == {n for n, _ in model.named_parameters()}
    expected_adam = {"input.weight": 1, "input.bias": 1, "blocks.7.layers.0.weight": 1 / 4 * 1 / 4,
                     "blocks.7.layers.0.bias": 1 / 4, "readout.weight": 1, "readout.bias": 1}
    expected_sgd = {"input.weight": 4, "input.bias": 4, "blocks.7.layers.0.weight": 1,
                    "blocks.7.layers.0.bias": 4, "readout.weight": 4, "readout.bias": 1}
    for name in expected_adam:
        assert adam[name] == pytest.approx(expected_adam[name], rel=1e-12), name
        assert sgd[name] == pytest.approx(expected_sgd[name], rel=1e-12), name
    plain = ResMLPSpec(width=128, base_width=32, depth=16)
    assert set(resmlp_lr_multipliers(plain, model, "adam").values()) == {1.0}
    with pytest.raises(InputError, match="not a parameter"):
        resmlp_lr_multipliers(spec, torch.nn.Linear(2, 2), "adam")


def test_mup_equals_sp_at_base_width_and_depth():
    common = {"width": 32, "base_width": 32, "depth": 3, "base_depth": 3}
    sp_spec = ResMLPSpec(**common)
    mup_spec = ResMLPSpec(parameterization="mup", depth_scaling="depth_mup", zero_init_readout=False, **common)
    sp, mup = (build_resmlp(s, (16,), 3, None, 1) for s in (sp_spec, mup_spec))
    assert all(torch.equal(a, b) for a, b in zip(sp.state_dict().values(), mup.state_dict().values()))
    assert sp.branch_scale == mup.branch_scale == 1.0
    assert torch.equal(sp(_x()), mup(_x()))
    for family in ("sgd", "adam"):
        assert resmlp_lr_multipliers(sp_spec, sp, family) == resmlp_lr_multipliers(mup_spec, mup, family)


def test_forward_vmaps_over_stacked_members():
    models = [build_resmlp(ResMLPSpec(width=16, depth=3, output_multiplier=1.0 + k), (16,), 3, None, k)
              for k in range(3)]
    params, buffers = stack_module_state(models)
    x = _x()

    def call(p, b, inputs):
        return functional_call(models[0], (p, b), (inputs,))

    stacked = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    for k, model in enumerate(models):
        assert torch.allclose(stacked[k], model(x), atol=1e-5, rtol=1e-5)  # float32, batched matmul order
    assert not torch.allclose(stacked[0], stacked[1], atol=1e-2)


DEPTHS = [2, 4, 8, 16, 32]


def _output_rms_after_adam(depth, scaling, steps=5, lr=1e-2):
    spec = ResMLPSpec(width=128, base_width=128, depth=depth, parameterization="mup", depth_scaling=scaling)
    model = build_resmlp(spec, (16,), 4, None, 0)
    multipliers = resmlp_lr_multipliers(spec, model, "adam")
    optimizer = torch.optim.Adam([{"params": [p], "lr": lr * multipliers[n]} for n, p in model.named_parameters()])
    x, y = _x(n=64), _x(n=64, d=4, seed=1)
    for _ in range(steps):
        loss = (model(x) - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return model(x).pow(2).mean().sqrt().item()


def _slope(values):
    lx = [math.log(d) for d in DEPTHS]
    ly = [math.log(v) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def test_depth_coordinate_check():
    """Output RMS after 5 Adam steps, depth 2..32: flat under Depth-muP (|slope| <= 0.1; measured
    -0.01, values 0.66-0.77), exploding without branch scaling (slope > 1; measured 2.2, outputs
    0.7 at L = 2, 355 at L = 32)."""
    mup = _slope([_output_rms_after_adam(d, "depth_mup") for d in DEPTHS])
    plain = _slope([_output_rms_after_adam(d, "none") for d in DEPTHS])
    assert abs(mup) <= 0.1, mup
    assert plain > 1.0, plain


def test_bad_inputs():
    with pytest.raises(InputError, match="real features"):
        build_resmlp(ResMLPSpec(), (8, 8), 3, None, 0)
    with pytest.raises(InputError, match="not tokens"):
        build_resmlp(ResMLPSpec(), (8,), 3, 16, 0)
    with pytest.raises(ValidationError, match="extra"):
        ResMLPSpec(branch_scale=0.5)
