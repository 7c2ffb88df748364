"""The hand-derived backward for shared inputs equals autograd through the stacked forward."""

import pytest
import torch

from lmech.models import ModelSpec, forward, init_params, plan_model
from lmech.train.mlp_backward import losses_and_grads_shared, supports_manual_backward
from lmech.train.losses import per_member_loss


def _autograd(plan, params, x, y, loss, multiplier):
    leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    losses = per_member_loss(forward(plan, leaves, x, multiplier), y, loss)
    grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
    return losses.detach(), dict(zip(leaves, grads))


@pytest.mark.parametrize("loss", ["cross_entropy", "half_sse"])
@pytest.mark.parametrize("model", [
    ModelSpec(width=12, depth=2),
    ModelSpec(width=12, depth=3, parameterization="mup", base_width=4),
    ModelSpec(width=12, depth=2, parameterization="ntk"),
    ModelSpec(width=12, depth=1),
    ModelSpec(width=12, depth=0),
    ModelSpec(width=12, depth=0, activation="linear", bias=False),
    ModelSpec(kind="deep_linear", width=12, depth=3, activation="linear", bias=False),
    ModelSpec(width=12, depth=2, bias=False),
])
@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_manual_backward_equals_autograd(loss, model, chunk):
    g = torch.Generator().manual_seed(0)
    n, d, c, k = 23, 5, 3, 5
    plan = plan_model(model, d, c, "sgd")
    params = init_params(plan, list(range(k)), [1.0, 0.5, 2.0, 1.0, 1.0])
    for p in params.values():
        p += 0.1 * torch.randn(p.shape, generator=g)  # nonzero biases
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g) if loss == "cross_entropy" else torch.randn(n, c, generator=g)
    multiplier = torch.tensor([1.0, 2.0, 0.5, 1.0, -1.0])
    assert supports_manual_backward(plan, x, loss)
    chunks = [slice(s, min(s + chunk, k)) for s in range(0, k, chunk)]
    for om in (multiplier, torch.ones(k)):
        losses, grads = losses_and_grads_shared(plan, params, x, y, loss, om, chunks)
        want_losses, want = _autograd(plan, params, x, y, loss, om)
        assert torch.allclose(losses, want_losses, rtol=1e-5, atol=1e-6)
        for name, value in want.items():
            assert grads[name].shape == value.shape, name
            assert torch.allclose(grads[name], value, rtol=1e-4, atol=1e-6), name


def test_per_member_inputs_and_other_activations_use_autograd():
    plan = plan_model(ModelSpec(width=8, activation="tanh"), 4, 2, "sgd")
    assert not supports_manual_backward(plan, torch.zeros(3, 4), "half_sse")
    plan = plan_model(ModelSpec(width=8), 4, 2, "sgd")
    assert not supports_manual_backward(plan, torch.zeros(2, 3, 4), "half_sse")


def test_worker_threads_and_reused_workspace_give_the_same_gradients():
    g = torch.Generator().manual_seed(1)
    plan = plan_model(ModelSpec(width=16, depth=2), 6, 4, "sgd")
    params = init_params(plan, list(range(7)), [1.0] * 7)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 4, (30,), generator=g)
    chunks = [slice(s, min(s + 2, 7)) for s in range(0, 7, 2)]
    threads = torch.get_num_threads()
    want_losses, want = losses_and_grads_shared(plan, params, x, y, "cross_entropy", None, chunks)
    workspace = {}
    for _ in range(2):  # the second call reuses the first one's buffers
        losses, grads = losses_and_grads_shared(plan, params, x, y, "cross_entropy", None, chunks, 3, workspace)
        assert torch.allclose(losses, want_losses, rtol=1e-6)
        for name, value in want.items():
            assert torch.allclose(grads[name], value, rtol=1e-5, atol=1e-7), name
    assert torch.get_num_threads() == threads  # the pool's one-thread setting stays in its threads


def test_big_full_batch_ensemble_with_threads_equals_one_by_one():
    from lmech.spec import OptimizerSpec, RunSpec
    from lmech.tasks.gaussian_regression import GaussianRegressionSpec
    from lmech.train import train_ensemble

    specs = [RunSpec(task=GaussianRegressionSpec(n_train=200, input_dim=8), model=ModelSpec(width=32, depth=2),
                     optimizer=OptimizerSpec(lr=0.05), steps=5, seed=seed, observe={}) for seed in range(3)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # manual_chunk_bytes small enough for one member a chunk, two worker threads
        together = train_ensemble(specs, manual_chunk_bytes=4 * 200 * 32)
    finally:
        torch.set_num_threads(threads)
    for spec, member in zip(specs, together):
        alone = train_ensemble([spec])[0]
        for name, value in alone.final_params.items():
            assert torch.allclose(member.final_params[name], value, rtol=1e-4, atol=1e-6), name
