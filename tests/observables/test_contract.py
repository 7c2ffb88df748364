"""Contract suite over every registry entry, through every entry point it declares.

For each entry: usable by name in `lmech.measure`, `lmech measure`, the Recorder and
`observe:` (or refused there with its declared reason); options validated; rows named
`<entry>/<field>[/<i>]`; finite and seed-deterministic; the user's model state untouched
(parameters, buffers, .grad, train/eval flags, global RNG) on a model with BatchNorm and
Dropout; the same value for a member alone and inside an ensemble. Float64 brute-force
checks of each instrument are in tests/instruments/test_<name>.py.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lmech.cli import app
from lmech.engine.recorder import Recorder
from lmech.errors import InputError
from lmech.instruments.losses import named_loss
from lmech.observables import ENTRY_POINTS, REGISTRY, get_entry, make_observer, measure
from lmech.spec import ObserveSpec, RunSpec
from lmech.store import Store
from lmech.train import train_ensemble

# Small options so each entry runs in well under a second; the instruments' own tests check accuracy.
OPTIONS = {
    "gradient_noise_scale": {"small_batch": 4, "big_batch": 16, "num_pairs": 2},
    "critical_batch_forecast": {"small_batch": 4, "big_batch": 16, "num_pairs": 2},
    "hessian_trace": {"num_probes": 4},
    "hessian_spectral_density": {"num_probes": 1, "lanczos_steps": 6, "grid_size": 20},
    "effective_dimensionality": {"z": 0.1, "k": 3},
    "local_learning_coefficient": {"num_chains": 2, "num_steps": 6, "num_burnin": 2},
    "weight_spectrum": {"min_eigenvalues": 2, "min_tail": 2},
}
TENSOR_OPTIONS = {  # options only Python can give (tensors), per entry
    "preconditioned_sharpness": lambda model: {"preconditioner": torch.ones(
        sum(p.numel() for p in model.parameters()), dtype=torch.float64)},
    "loss_barrier": lambda model: {"theta1": {n: 0.5 * p.detach() for n, p in model.named_parameters()}},
}
MODEL_ENTRIES = sorted(n for n, e in REGISTRY.items() if e.scope == "model")
CE = named_loss("cross_entropy")


def _model_with_state() -> torch.nn.Module:
    """BatchNorm (running statistics), Dropout (global RNG), train mode, gradients set."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(),
                                    torch.nn.Dropout(0.3), torch.nn.Linear(6, 3)).double()
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    return model


def _batch(n: int = 24):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _state(model):
    return ({n: p.detach().clone() for n, p in model.named_parameters()},
            {n: b.detach().clone() for n, b in model.named_buffers()},
            {n: p.grad.clone() for n, p in model.named_parameters()},
            [m.training for m in model.modules()], torch.get_rng_state())


def _assert_same_state(before, after, name):
    for what, a, b in zip(("parameter", "buffer", "grad"), before[:3], after[:3]):
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name} changed {what} {key}"
    assert before[3] == after[3], f"{name} changed a train/eval flag"
    assert torch.equal(before[4], after[4]), f"{name} advanced the global RNG"


def _options(name, model):
    return {**OPTIONS.get(name, {}), **TENSOR_OPTIONS.get(name, lambda m: {})(model)}


def _check_rows(name, rows):
    assert rows, f"{name} wrote no rows"
    for metric, value in rows.items():
        assert metric.startswith(f"{name}/"), metric
        assert isinstance(value, float) and math.isfinite(value), (metric, value)


@pytest.mark.parametrize("name", MODEL_ENTRIES)
def test_measure_names_rows_determinism_and_untouched_state(name):
    model, batch = _model_with_state(), _batch()
    before = _state(model)
    first = measure(model, CE, batch, [name], seed=3, **{name: _options(name, model)})
    _assert_same_state(before, _state(model), name)
    second = measure(model, CE, batch, [name], seed=3, **{name: _options(name, model)})
    _check_rows(name, first.rows())
    assert first.rows() == second.rows(), f"{name} is not seed-deterministic"
    json.dumps(first.to_json())
    # the user's model in train mode with dropout: measured in eval mode, so equal to an eval-mode copy
    evaluated = _model_with_state().eval()
    assert measure(evaluated, CE, batch, [name], seed=3, **{name: _options(name, evaluated)}).rows() == first.rows()


@pytest.mark.parametrize("name", ["sharpness", "hessian_trace", "gradient_noise_scale"])
def test_train_mode_is_seeded_and_leaves_state_untouched(name):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Dropout(0.3),
                                    torch.nn.Linear(6, 3)).double()
    model.eval()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = _state(model)
    batch = _batch()
    train = [measure(model, CE, batch, [name], seed=s, mode="train", **{name: OPTIONS.get(name, {})}).rows()
             for s in (3, 3)]
    _assert_same_state(before, _state(model), name)
    assert train[0] == train[1], "train mode is not reproducible from the seed"
    evaluated = measure(model, CE, batch, [name], seed=3, **{name: OPTIONS.get(name, {})}).rows()
    assert train[0] != evaluated, "dropout had no effect: train mode was not applied"  # negative control


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_point_serves_or_refuses_with_its_reason(name, tmp_path):
    entry = REGISTRY[name]
    for point in ENTRY_POINTS:
        if point in entry.unavailable:
            with pytest.raises(InputError, match=f"{name} cannot be used in {point}"):
                get_entry(name, point)
        else:
            assert get_entry(name, point) is entry
    if entry.scope == "model":
        assert "measure" not in entry.unavailable and "recorder" not in entry.unavailable
    # option validation: an unknown key and a wrongly typed value, one line each
    with pytest.raises(InputError, match=f"unknown option.*for {name}"):
        make_observer({name: ObserveSpec(every=1, no_such_option=1)}, 2) if "observe" not in entry.unavailable \
            else measure(_model_with_state(), CE, _batch(), [name], **{name: {"no_such_option": 1}})


@pytest.mark.parametrize("name", [n for n in MODEL_ENTRIES if "observe" not in REGISTRY[n].unavailable])
def test_cli_measure_by_name(name, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "cli"))
    sets = [f"--set={name}.{k}={v}" for k, v in OPTIONS.get(name, {}).items()]
    result = CliRunner().invoke(app, ["measure", "--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:data",
                                      "--observables", name, *sets, "--json"])
    if name in TENSOR_OPTIONS:  # a tensor option cannot come from the command line: one line, exit 2
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        return
    assert result.exit_code == 0, result.output
    assert name in json.loads(result.stdout)["results"]


@pytest.mark.parametrize("name", MODEL_ENTRIES)
def test_recorder_by_name(name, tmp_path):
    model, batch = _model_with_state(), _batch()
    before = _state(model)
    with Recorder(tmp_path, CE, batch, observe={name: {"every": 1, **_options(name, model)}}, total_steps=1,
                  name="contract") as rec:
        rec(0, model)
        rec(1, model)
    _assert_same_state(before, _state(model), name)
    names = {row for row in Store(tmp_path).metrics(rec.run_id)["name"]}
    assert names and all(n.startswith(f"{name}/") for n in names), names


def _observed(name: str, seeds: list[int]) -> dict[str, torch.Tensor]:
    entry = REGISTRY[name]
    base = {"model": {"width": 8, "depth": 1}, "optimizer": {"lr": 0.05}, "steps": 2, "observe": {}}
    for key, value in entry.example.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    specs = [RunSpec.model_validate({**base, "seed": s}) for s in seeds]
    observer, _ = make_observer({name: ObserveSpec(every=1, **OPTIONS.get(name, {}))}, 2)
    captured = {}

    def at_step_two(state):
        if state.step == 2:
            before = {n: p.detach().clone() for n, p in state.params.items()}
            captured.update(observer(state))
            assert all(torch.equal(p.detach(), before[n]) for n, p in state.params.items()), name
        return {}

    train_ensemble(specs, at_step_two, {2})
    return captured


@pytest.mark.parametrize("name", [n for n in sorted(REGISTRY) if "observe" not in REGISTRY[n].unavailable])
def test_observe_alone_equals_inside_an_ensemble(name):
    together = _observed(name, [0, 1, 2])
    assert together and all(c.startswith(f"{name}/") for c in together), together.keys()
    for column, value in together.items():
        assert value.shape == (3,), (column, value.shape)
        if not (name == "accuracy" and torch.isnan(value).all()):
            assert torch.isfinite(value).all(), (column, value)
    again, alone = _observed(name, [0, 1, 2]), _observed(name, [1])
    for column, value in together.items():
        assert torch.equal(value, again[column]), f"{column} is not seed-deterministic"
        # float32 rounding of stacked ops differs from K = 1 in the last bits
        assert torch.allclose(value[1:2].double(), alone[column].double(), rtol=1e-4, atol=1e-6), column


def test_bad_observe_is_caught_before_training(tmp_path):
    for observe, message in [({"effective_dimensionalty": {}}, "unknown observable"),
                             ({"sharpness": {"kk": 3}}, "unknown option"),
                             ({"sharpness": {"k": "three"}}, "sharpness.k: Input should be a valid integer"),
                             ({"sharpness": {"k": True}}, "sharpness.k: Input should be a valid integer"),
                             ({"loss_barrier": {}}, "loss_barrier cannot be used in observe"),
                             ({"effective_dimensionality": {}}, "needs option z")]:
        spec = RunSpec.model_validate({"steps": 1, "observe": observe})
        with pytest.raises(InputError, match=message):
            from lmech.engine import execute

            execute([spec], Store(tmp_path / "store"))
    assert not (tmp_path / "store").exists()  # nothing trained, nothing written


def test_preconditioned_sharpness_refuses_optimizers_without_adams_preconditioner():
    spec = RunSpec.model_validate({"model": {"width": 8, "depth": 1}, "steps": 2, "optimizer": {"name": "lion"},
                                   "observe": {"preconditioned_sharpness": {"every": 1}}})
    with pytest.raises(InputError, match="needs optimizer adam or adamw"):
        train_ensemble([spec], *make_observer(spec.observe, spec.steps))
