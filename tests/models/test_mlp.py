import math

import pytest
import torch

from lmech.models import MemberModule, ModelSpec, forward, init_params, plan_model


def _reference(params, x, plan, member):
    """Plain loop over layers with torch.nn.functional for one member."""
    h = x
    for index, layer in enumerate(plan.layers):
        z = layer.multiplier * (h @ params[f"W{index}"][member])
        if plan.bias:
            z = z + params[f"b{index}"][member, 0]
        h = z if index == len(plan.layers) - 1 else torch.relu(z)
    return h


def test_stacked_forward_equals_per_member_reference():
    plan = plan_model(ModelSpec(width=16, depth=2, parameterization="ntk"), 5, 3, "sgd")
    params = init_params(plan, [0, 1, 2], [1.0, 0.5, 2.0])
    for p in params.values():
        p += 0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0))
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(1))
    out = forward(plan, params, x)
    for k in range(3):
        assert torch.allclose(out[k], _reference(params, x, plan, k), atol=1e-6)  # float32
        assert torch.allclose(MemberModule(plan, params, k)(x), out[k], atol=1e-6)


def test_member_init_does_not_depend_on_its_ensemble():
    plan = plan_model(ModelSpec(width=8), 4, 2, "sgd")
    alone = init_params(plan, [5], [1.0])
    together = init_params(plan, [3, 5, 7], [1.0, 1.0, 1.0])
    for name in alone:
        assert torch.equal(alone[name][0], together[name][1])


@pytest.mark.parametrize("width", [64, 256])
def test_sp_init_std_is_gain_over_sqrt_fan_in(width):
    plan = plan_model(ModelSpec(width=width, depth=2), 32, 10, "sgd")
    params = init_params(plan, [0], [1.0])
    hidden = params["W1"][0]
    expected = math.sqrt(2.0 / width)
    # sample std of width^2 Gaussians: relative error ~ 1/width; allow 5 standard errors
    assert abs(hidden.std().item() - expected) / expected < 5 / width
