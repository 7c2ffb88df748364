"""activation_scale against independent computations: the MLP against a member-by-member float64
forward pass and the network output; any other family (the transformer in detail) against plain
float64 forward hooks on each member's module, the stacked forward and the residual stream composed
by hand; alone = inside an ensemble; a width coordinate check through the trainer (muP flat, SP
growing)."""

import torch
import torch.nn.functional as F

from lmech.models.mlp import forward
from lmech.observables import REGISTRY as OBSERVABLES
from lmech.observables import make_observer
from lmech.spec import ModelSpec, ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.teacher_student import TeacherStudentSpec
from lmech.train import build_ensemble, member_module, train_ensemble


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


# ---- any nn.Module family: forward hooks on each member's own module ------------------------

TOKENS = {"name": "markov_language", "vocab_size": 6, "seq_len": 8, "n_train": 12, "n_test": 4}
TRANSFORMER = {"kind": "transformer", "width": 16, "heads": 2, "depth": 2, "context": 8}


def _transformer_specs(seeds=(0, 1, 2), multipliers=(1.0, 2.0, 0.5), data_seed=0, **model):
    return [RunSpec.model_validate({"task": TOKENS, "model": {**TRANSFORMER, **model, "output_multiplier": m},
                                    "optimizer": {"name": "adamw", "lr": 0.01}, "steps": 1, "seed": s,
                                    "data_seed": data_seed, "observe": {}})
            for s, m in zip(seeds, multipliers)]


def _transformer_fields(depth=2):
    block = ["", ".ln_attention", ".attention", ".attention.query", ".attention.key", ".attention.value",
             ".attention.out", ".ln_mlp", ".mlp", ".mlp.up", ".mlp.down"]
    return [f"blocks.{i}{part}" for i in range(depth) for part in block] + ["ln_final", "readout", "output"]


def _hooked_float64(module, x):
    """{qualified name or "output": RMS} of every module's output, by plain hooks on a float64 copy."""
    module = module.double().eval()
    rms = {}
    handles = [sub.register_forward_hook(
        lambda _m, _i, out, name=name: rms.__setitem__(name or "output", float(out.pow(2).mean().sqrt())))
        for name, sub in module.named_modules()]
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return rms


def test_transformer_matches_float64_hooks_on_each_member_and_names_are_stable():
    state = build_ensemble(_transformer_specs())
    values = OBSERVABLES["activation_scale"].function(state)
    assert list(values) == _transformer_fields()  # documented names, qualified-name order, output last
    for k in range(3):
        expected = _hooked_float64(member_module(state, k), state.x_train)
        assert sorted(expected) == sorted(values)
        for name, value in expected.items():
            assert abs(values[name][k].item() - value) <= 1e-5 * value, (k, name)  # float32 vs float64
    # the output multiplier reaches "output" but not the readout
    ratio = values["output"] / values["readout"]
    torch.testing.assert_close(ratio, torch.tensor([1.0, 2.0, 0.5]), rtol=1e-6, atol=0)


def test_transformer_output_and_blocks_match_paths_without_hooks():
    """"output" against the stacked (vmapped) forward; "blocks.i" against the residual stream
    composed by hand from the member's embedding and blocks."""
    state = build_ensemble(_transformer_specs())
    values = OBSERVABLES["activation_scale"].function(state)
    logits = state.outputs(state.x_train)  # (K, N, T, C)
    torch.testing.assert_close(values["output"], logits.pow(2).mean(dim=(1, 2, 3)).sqrt(), rtol=1e-5, atol=0)
    for k in range(3):
        module = member_module(state, k).double().eval()
        with torch.no_grad():
            h = F.embedding(state.x_train, module.token_embedding) + module.position_embedding[:8]
            for i, block in enumerate(module.blocks):
                h = block(h)
                assert abs(values[f"blocks.{i}"][k].item() - h.pow(2).mean().sqrt().item()) <= 1e-5 * h.abs().max()


def test_transformer_alone_equals_inside_an_ensemble_with_per_member_data():
    together = build_ensemble(_transformer_specs(data_seed=None))  # each member its own data draw
    assert together.per_member_data
    stacked = OBSERVABLES["activation_scale"].function(together, max_examples=5)
    for k, (seed, m) in enumerate(zip((0, 1, 2), (1.0, 2.0, 0.5))):
        alone = OBSERVABLES["activation_scale"].function(
            build_ensemble(_transformer_specs(seeds=(seed,), multipliers=(m,), data_seed=None)), max_examples=5)
        assert list(alone) == list(stacked)
        for name, value in alone.items():
            assert torch.equal(value[0], stacked[name][k]), (k, name)  # the same module on the same inputs


def test_transformer_leaves_the_state_untouched():
    state = build_ensemble(_transformer_specs(dropout=0.5))
    before = {n: p.detach().clone() for n, p in {**state.params, **state.stacked.buffers}.items()}
    flags = [m.training for m in state.template.modules()]
    first = OBSERVABLES["activation_scale"].function(state)
    second = OBSERVABLES["activation_scale"].function(state)
    for name, value in {**state.params, **state.stacked.buffers}.items():
        assert torch.equal(value, before[name]), name
    assert [m.training for m in state.template.modules()] == flags
    assert not any(m._forward_hooks for m in state.template.modules())
    for name in first:  # eval mode: dropout off, so a second call repeats the first
        assert torch.equal(first[name], second[name]), name


def test_transformer_negative_control_scaling_a_late_layer_moves_only_it_and_later():
    state = build_ensemble(_transformer_specs())
    base = OBSERVABLES["activation_scale"].function(state)
    state.params["blocks.1.mlp.down.weight"] = state.params["blocks.1.mlp.down.weight"] * 3.0
    moved = OBSERVABLES["activation_scale"].function(state)
    for name in _transformer_fields()[:11] + ["blocks.1.ln_attention", "blocks.1.attention", "blocks.1.mlp.up"]:
        assert torch.equal(moved[name], base[name]), name
    assert torch.allclose(moved["blocks.1.mlp.down"], 3.0 * base["blocks.1.mlp.down"], rtol=1e-5, atol=0)
    assert not torch.allclose(moved["blocks.1"], base["blocks.1"], rtol=1e-3, atol=0)


def test_transformer_max_examples_uses_a_prefix():
    state = build_ensemble(_transformer_specs())
    few = OBSERVABLES["activation_scale"].function(state, max_examples=3)
    state.x_train = state.x_train[:3]
    direct = OBSERVABLES["activation_scale"].function(state)
    for name in few:
        torch.testing.assert_close(few[name], direct[name], rtol=0, atol=0)


FAMILIES = {  # every nn.Module family: "output" is the RMS of the model's outputs
    "cnn": ({"name": "digits"}, {"kind": "cnn", "dim": 2, "width": 4}),
    "resmlp": ({"name": "digits"}, {"kind": "resmlp", "width": 8, "depth": 2}),
    "linear_recurrence": (TOKENS, {"kind": "linear_recurrence", "width": 8, "depth": 1}),
}


def test_every_family_has_finite_fields_and_output_equals_the_model_output():
    for family, (task, model) in FAMILIES.items():
        specs = [RunSpec.model_validate({"task": task, "model": model, "steps": 1, "seed": s, "observe": {}})
                 for s in (0, 1)]
        state = build_ensemble(specs)
        values = OBSERVABLES["activation_scale"].function(state, max_examples=16)
        assert len(values) > 2 and list(values)[-1] == "output", (family, list(values))
        assert all(v.shape == (2,) and torch.isfinite(v).all() for v in values.values()), family
        outputs = state.outputs(state.x_train[:16])
        expected = outputs.pow(2).flatten(1).mean(1).sqrt()
        torch.testing.assert_close(values["output"], expected, rtol=1e-5, atol=0, msg=family)


def _logit_scale_after_training(parameterization: str, width: int) -> float:
    """Mean over 3 seeds of activation_scale/output after 5 Adam steps, through the trainer's observe:."""
    task = {"name": "markov_language", "vocab_size": 8, "seq_len": 8, "n_train": 32, "n_test": 8}
    specs = [RunSpec.model_validate({"task": task, "model": {**TRANSFORMER, "width": width, "parameterization":
                                     parameterization, "base_width": 16}, "optimizer": {"name": "adam", "lr": 0.01},
                                     "steps": 5, "seed": s, "observe": {}}) for s in range(3)]
    observer, steps = make_observer({"activation_scale": ObserveSpec(every=5)}, 5)
    got = {}
    train_ensemble(specs, lambda state: got.update(observer(state)) or {}, steps)
    assert got["activation_scale/blocks.1"].shape == (3,)
    return float(got["activation_scale/output"].mean())


def test_width_coordinate_check_mup_flat_sp_growing():
    """Yang et al. 2022 Fig. 5 for the logits: 5 Adam steps at lr 0.01, widths 16 -> 128.
    Measured: SP 0.91 -> 1.73 (x1.9), muP 0.387 -> 0.362 (x0.94)."""
    sp = [_logit_scale_after_training("sp", w) for w in (16, 128)]
    mup = [_logit_scale_after_training("mup", w) for w in (16, 128)]
    assert sp[1] / sp[0] > 1.5  # SP logits grow with width (the check would flag SP)
    assert 0.8 < mup[1] / mup[0] < 1.25  # muP logits stay Theta(1)
