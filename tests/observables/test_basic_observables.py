"""loss, accuracy, param_norm, grad_norm, relative_update, mode_strength, coefficient_error
against direct computations on one member."""

import torch

from lmech.models import MemberModule
from lmech.observables import REGISTRY as OBSERVABLES
from lmech.spec import ModelSpec, OptimizerSpec, RunSpec
from lmech.tasks.deep_linear import DeepLinearSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.instruments.losses import named_loss
from lmech.train import build_ensemble, train_ensemble


def _state(specs):
    return build_ensemble(specs)


def test_loss_and_grad_norm_match_a_plain_module():
    specs = [RunSpec(model=ModelSpec(width=16), seed=s, observe={}) for s in (0, 1)]
    state = _state(specs)
    losses = OBSERVABLES["loss"].function(state)
    norms = OBSERVABLES["grad_norm"].function(state)["total"]
    for k in range(2):
        module = MemberModule(state.plan, state.params, k)
        loss = named_loss(state.loss)(module(state.x_train), state.y_train)
        assert abs(loss.item() - losses["train"][k].item()) < 1e-5
        grads = torch.autograd.grad(loss, list(module.parameters()))
        expected = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        assert abs(expected.item() - norms[k].item()) / expected.item() < 1e-5  # float32


def test_accuracy_counts_argmax_hits():
    from lmech.observables.accuracy import accuracy_of

    outputs = torch.tensor([[[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]]])
    assert abs(accuracy_of(outputs, torch.tensor([0, 1, 1])).item() - 2 / 3) < 1e-7  # float32
    assert torch.isnan(accuracy_of(outputs[..., :1], torch.zeros(3, 1))).all()


def test_param_norm_and_relative_update():
    spec = RunSpec(model=ModelSpec(width=8), optimizer=OptimizerSpec(lr=0.1), steps=1, observe={})
    state = _state([spec])
    before = {n: p.detach().clone() for n, p in state.params.items()}
    norms = OBSERVABLES["param_norm"].function(state)
    assert abs(norms["W0"].item() - before["W0"].norm().item()) < 1e-5
    after = train_ensemble([spec])[0].final_params
    # relative update from the recorded last update equals |after - before| / |before|
    state.last_update = {n: (after[n] - before[n][0]).unsqueeze(0) for n in before}
    state.params = {n: after[n].unsqueeze(0) for n in after}
    rel = OBSERVABLES["relative_update"].function(state)["W1"].item()
    expected = ((after["W1"] - before["W1"][0]).norm() / before["W1"].norm()).item()
    assert abs(rel - expected) < 1e-5


def test_mode_strength_is_projection_of_the_end_to_end_map():
    spec = RunSpec(task=DeepLinearSpec(), model=ModelSpec(kind="deep_linear", activation="linear",
                                                          bias=False, depth=1, width=10), observe={})
    state = _state([spec])
    extras = state.tasks[0].extras
    net = (state.params["W0"][0] @ state.params["W1"][0]).T  # (C, D)
    values = OBSERVABLES["mode_strength"].function(state)
    for r in range(4):
        expected = extras["U"][:, r] @ net @ extras["V"][:, r]
        assert abs(values[str(r)].item() - expected.item()) < 1e-6
    # negative control: a network equal to the target map has strengths = singular values
    state.params = {"W0": extras["target_map"].T.unsqueeze(0), "W1": torch.eye(8).unsqueeze(0)}
    state.plan = state.plan.__class__(state.plan.layers[:1] + (state.plan.layers[1].__class__(8, 8, 1.0, 1.0, 1.0, 1.0),),
                                      "linear", False)
    got = torch.stack([v for v in OBSERVABLES["mode_strength"].function(state).values()]).flatten()
    assert torch.allclose(got, extras["singular_values"], atol=1e-5)


def test_coefficient_error_is_distance_to_beta():
    spec = RunSpec(task=GaussianRegressionSpec(input_dim=6), observe={},
                   model=ModelSpec(depth=0, activation="linear", bias=False, init_scale=0.0))
    state = _state([spec])
    beta = state.tasks[0].extras["beta"]
    value = OBSERVABLES["coefficient_error"].function(state)["value"].item()
    assert abs(value - beta.pow(2).sum().item()) < 1e-6  # zero init: |0 - beta|^2


def test_loss_without_train_split_returns_only_the_test_loss():
    state = _state([RunSpec(model=ModelSpec(width=8), seed=s, observe={}) for s in (0, 1)])
    both = OBSERVABLES["loss"].function(state)
    test_only = OBSERVABLES["loss"].function(state, train=False)
    assert set(test_only) == {"test"} and torch.equal(test_only["test"], both["test"])
