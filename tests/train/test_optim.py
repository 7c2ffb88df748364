"""The functional optimizers reproduce torch.optim step for step (K = 1)."""

import pytest
import torch

from lmech.models import MemberModule, ModelSpec, forward, init_params, plan_model
from lmech.train import MemberHyper, init_optimizer_state, optimizer_step, per_member_loss


@pytest.mark.parametrize("name,kwargs", [
    ("sgd", {"momentum": 0.0, "weight_decay": 0.0}),
    ("sgd", {"momentum": 0.9, "weight_decay": 0.01}),
    ("adam", {"weight_decay": 0.01}),
    ("adamw", {"weight_decay": 0.1}),
])
def test_matches_torch_optim(name, kwargs):
    plan = plan_model(ModelSpec(width=16, depth=1), 6, 3, "sgd")
    params = {n: p.requires_grad_(True) for n, p in init_params(plan, [0], [1.0]).items()}
    module = MemberModule(plan, params, 0)
    lr = 0.05
    if name == "sgd":
        reference = torch.optim.SGD(module.parameters(), lr=lr, **kwargs)
    else:
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        reference = cls(module.parameters(), lr=lr, weight_decay=kwargs["weight_decay"])
    hyper = MemberHyper(torch.tensor([lr]), torch.tensor([kwargs.get("weight_decay", 0.0)]),
                        torch.tensor([kwargs.get("momentum", 0.0)]))
    state = init_optimizer_state(name, params)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 6, generator=g), torch.randn(20, 3, generator=g)
    for step in range(1, 6):
        loss = per_member_loss(forward(plan, params, x), y, "half_sse").sum()
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
        optimizer_step(name, params, grads, state, hyper, 1.0, {}, step)
        reference.zero_grad()
        per_member_loss(module(x).unsqueeze(0), y, "half_sse").sum().backward()
        reference.step()
        for pname, p in params.items():
            # float32 arithmetic in a different order: agree to ~1e-6 relative
            assert torch.allclose(p[0], module.weights[pname], rtol=1e-5, atol=1e-6), (step, pname)


def test_lr_multiplier_and_zero_lr_member():
    params = {"W0": torch.ones(2, 3, 3)}
    grads = {"W0": torch.ones(2, 3, 3)}
    hyper = MemberHyper(torch.tensor([0.1, 0.0]), torch.zeros(2), torch.zeros(2))
    updates = optimizer_step("sgd", params, grads, init_optimizer_state("sgd", params), hyper,
                             0.5, {"W0": 4.0}, 1)
    assert torch.allclose(updates["W0"][0], torch.full((3, 3), -0.2))  # 0.1 * 0.5 * 4
    assert torch.equal(updates["W0"][1], torch.zeros(3, 3))
