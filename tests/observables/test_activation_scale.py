"""activation_scale against a member-by-member float64 forward pass, and the network output."""

import torch

from lmech.models.mlp import forward
from lmech.observables import REGISTRY as OBSERVABLES
from lmech.spec import ModelSpec, OptimizerSpec, RunSpec
from lmech.tasks.teacher_student import TeacherStudentSpec
from lmech.train import build_ensemble


def _specs(parameterization="mup", seeds=(0, 1, 2)):
    task = TeacherStudentSpec(n_train=32, n_test=8, input_dim=5, output_dim=3)
    model = ModelSpec(width=12, depth=2, activation="tanh", parameterization=parameterization, base_width=4)
    return [RunSpec(task=task, model=model, optimizer=OptimizerSpec(name="adam"), seed=s, observe={})
            for s in seeds]


def _brute_force(state, k):
    """RMS of each layer's pre-activation for member k, layer by layer in float64."""
    h = state.x_train.double()
    out = []
    params = {n: p.detach() for n, p in state.params.items()}
    for index, layer in enumerate(state.plan.layers):
        z = layer.multiplier * h @ params[f"W{index}"][k].double() + params[f"b{index}"][k].double()
        if index == len(state.plan.layers) - 1:
            z = z * float(state.output_multiplier[k])
        out.append(float(z.pow(2).mean().sqrt()))
        h = torch.tanh(z)
    return out


def test_matches_a_member_by_member_forward_pass():
    state = build_ensemble(_specs())
    with torch.no_grad():  # give the biases and the output multiplier something to do
        for name in state.params:
            if name.startswith("b"):
                state.params[name].normal_(generator=torch.Generator().manual_seed(1))
    state.output_multiplier = torch.tensor([1.0, 2.0, 0.5])
    values = OBSERVABLES["activation_scale"].function(state)
    assert sorted(values) == ["0", "1", "2"]
    for k in range(3):
        expected = _brute_force(state, k)
        for index, value in enumerate(expected):
            got = values[str(index)][k].item()
            assert abs(got - value) <= 1e-5 * value  # float32 vs float64


def test_output_layer_equals_the_network_output_rms():
    state = build_ensemble(_specs("sp"))
    outputs = forward(state.plan, state.params, state.x_train, state.output_multiplier)
    expected = outputs.pow(2).mean(dim=(1, 2)).sqrt()
    got = OBSERVABLES["activation_scale"].function(state)["2"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)  # float32, same arithmetic


def test_ensemble_equals_one_by_one_and_leaves_params_untouched():
    together = build_ensemble(_specs())
    before = {n: p.detach().clone() for n, p in together.params.items()}
    stacked = OBSERVABLES["activation_scale"].function(together)
    for name, p in together.params.items():
        assert torch.equal(p, before[name])
    for k, seed in enumerate((0, 1, 2)):
        alone = OBSERVABLES["activation_scale"].function(build_ensemble(_specs(seeds=(seed,))))
        for name, value in alone.items():
            assert abs(value.item() - stacked[name][k].item()) <= 1e-6 * value.item()  # float32


def test_negative_control_scaling_a_hidden_layer_moves_only_that_layer_and_later():
    state = build_ensemble(_specs())
    base = OBSERVABLES["activation_scale"].function(state)
    state.params["W1"] = state.params["W1"] * 3.0
    moved = OBSERVABLES["activation_scale"].function(state)
    assert torch.equal(moved["0"], base["0"])
    assert torch.all(moved["1"] > 2.0 * base["1"])


def test_max_examples_uses_a_prefix():
    state = build_ensemble(_specs())
    few = OBSERVABLES["activation_scale"].function(state, max_examples=1)
    state.x_train = state.x_train[:1]
    direct = OBSERVABLES["activation_scale"].function(state)
    for name in few:
        torch.testing.assert_close(few[name], direct[name], rtol=0, atol=0)
