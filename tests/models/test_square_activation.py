"""activation "square" (phi(z) = z^2, Gromov 2023): forward against a hand-written reference, gain 1."""

import torch

from lmech.models import MemberModule, ModelSpec, forward, init_params, plan_model
from lmech.models.parameterization import activation_gain


def test_square_forward_equals_reference_without_bias():
    plan = plan_model(ModelSpec(width=12, depth=1, activation="square", bias=False), 6, 4, "adam")
    params = init_params(plan, [0, 1], [1.0, 2.0])
    assert set(params) == {"W0", "W1"}  # no biases
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(0))
    out = forward(plan, params, x)
    for k in range(2):
        reference = ((x @ params["W0"][k]) ** 2) @ params["W1"][k]  # f(x) = W1^T (W0^T x)^2
        assert torch.allclose(out[k], reference, atol=1e-5)
        assert torch.allclose(MemberModule(plan, params, k)(x), out[k], atol=1e-6)


def test_square_is_homogeneous_of_degree_three_in_init_scale():
    """Two layers, quadratic activation, no bias: scaling every weight by s scales the output by s^3."""
    plan = plan_model(ModelSpec(width=10, depth=1, activation="square", bias=False), 5, 3, "sgd")
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    base = forward(plan, init_params(plan, [3], [1.0]), x)
    scaled = forward(plan, init_params(plan, [3], [2.0]), x)
    assert torch.allclose(scaled, 8.0 * base, rtol=1e-5, atol=1e-6)


def test_square_gain_is_one():
    assert activation_gain("square") == 1.0
    plan = plan_model(ModelSpec(width=16, depth=1, activation="square"), 8, 2, "sgd")
    assert abs(plan.layers[0].init_std - 8 ** -0.5) < 1e-12  # gain 1 / sqrt(fan_in)
