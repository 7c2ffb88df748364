"""`lmech measure` on a user's factory and data function: values equal `lmech.measure`; one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lmech.cli import app
from lmech.observables.measure import measure
from lmech.instruments.losses import named_loss

from .cli_fixtures import data, make_mlp, make_wide_mlp

TESTS = Path(__file__).parent
BASE = ["measure", "--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:data"]


@pytest.fixture(autouse=True)
def _fixtures_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))  # `cli_fixtures` as a top-level module, as a user's would be


def _run(*args: str):
    return CliRunner().invoke(app, [*BASE, *args])


def test_json_equals_the_python_api_and_sets_reach_the_instrument():
    result = _run("--observables", "sharpness,hessian_trace,ntk_gram", "--set", "sharpness.k=3",
                  "--set", "hessian_trace.num_probes=6", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["loss"] == "cross_entropy" and printed["mode"] == "eval"
    out = printed["results"]
    direct = measure(make_mlp(), named_loss("cross_entropy"), data(), ["sharpness", "hessian_trace", "ntk_gram"],
                     seed=2, sharpness={"k": 3}, hessian_trace={"num_probes": 6}).to_json()
    assert list(out) == ["sharpness", "hessian_trace", "ntk_gram"]
    assert len(out["sharpness"]["eigenvalues"]) == 3 and len(out["hessian_trace"]["samples"]) == 6
    # same float64 computation in the same process: exact
    assert out["sharpness"]["eigenvalues"] == direct["sharpness"]["eigenvalues"]
    assert out["hessian_trace"]["estimate"] == direct["hessian_trace"]["estimate"]
    assert out["ntk_gram"]["gram"] == direct["ntk_gram"]["gram"]


def test_table_shows_scalars_and_array_shapes(tmp_path):
    weights = tmp_path / "model.pt"
    torch.save(make_mlp().state_dict(), weights)
    result = _run("--weights", str(weights), "--observables", "sharpness,ntk_gram")
    assert result.exit_code == 0, result.output
    assert "sharpness/eigenvalues/0" in result.stdout and "ntk_gram/trace" in result.stdout
    assert "array (32, 32)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--observables", "sharpnes"], "unknown observable 'sharpnes'; known: critical_batch_forecast"),
    (["--observables", "sharpness", "--set", "sharpness.kk=2"], "unknown option(s) kk for sharpness"),
    (["--observables", "sharpness", "--set", "k=2"], "--set expects instrument.option=value"),
    (["--observables", "sharpness", "--task", "digits"], "give exactly one of --task"),
    (["--observables", "sharpness", "--set", "sharpness.k=three"], "sharpness.k: Input should be a valid integer"),
    (["--observables", "sharpness", "--set", "sharpness.k=0"], "sharpness.k: Input should be greater than or equal to 1"),
    (["--observables", "loss"], "loss cannot be used in measure"),
    (["--observables", "sharpness", "--loss", "l1"], "--loss must be one of mse, half_sse, cross_entropy"),
])
def test_bad_requests_exit_2_with_one_line(args, message):
    result = _run(*args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_module_factory_function_and_incompatible_weights(tmp_path):
    runner = CliRunner()
    wide = tmp_path / "wide.pt"
    torch.save(make_wide_mlp().state_dict(), wide)
    cases = [
        (["--model", "no_such_module:f", "--data", "cli_fixtures:data"], "cannot import module 'no_such_module'"),
        (["--model", "cli_fixtures:nope", "--data", "cli_fixtures:data"], "has no attribute 'nope'"),
        (["--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:nodata"], "has no attribute 'nodata'"),
        (["--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:data", "--weights", str(wide)],
         "'0.weight' has shape (9, 4), the model expects (8, 4)"),
        (["--model", "cli_fixtures:raising_factory", "--data", "cli_fixtures:data"],
         "model factory 'cli_fixtures:raising_factory' raised ValueError: width must be even"),
        (["--model", "cli_fixtures:not_a_module", "--data", "cli_fixtures:data"], "not a torch.nn.Module"),
        (["--model", "broken_module:f", "--data", "cli_fixtures:data"],
         "importing 'broken_module' raised RuntimeError: this module is broken at import"),
        (["--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:raising_data"],
         "data function 'cli_fixtures:raising_data' raised KeyError"),
        (["--model", "cli_fixtures:make_token_model", "--data", "cli_fixtures:out_of_vocabulary_tokens"],
         "token id at or past the model's vocabulary size"),
        (["--model", "cli_fixtures:make_mlp", "--data", "cli_fixtures:tokens"], "the model cannot run on this data"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["measure", *args, "--observables", "sharpness"])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_subprocess_python_m_lmech_cli():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    ok = subprocess.run([sys.executable, "-m", "lmech.cli", *BASE, "--observables", "sharpness", "--json"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["results"]["sharpness"]["converged"] is True


def test_sequence_models_dict_inputs_and_tuple_outputs():
    """(N, T) tokens -> (N, T, V) logits with (N, T) targets; dict inputs to a model returning a tuple."""
    tokens = CliRunner().invoke(app, ["measure", "--model", "cli_fixtures:make_token_model", "--data",
                                      "cli_fixtures:tokens", "--observables", "sharpness", "--json"])
    assert tokens.exit_code == 0, tokens.output
    from .cli_fixtures import make_keyword_mlp, make_token_model, tokens as token_data

    direct = measure(make_token_model(), named_loss("cross_entropy"), token_data(), "sharpness", seed=0)
    assert json.loads(tokens.stdout)["results"]["sharpness"]["eigenvalues"] == direct.to_json()["sharpness"]["eigenvalues"]
    keyword = CliRunner().invoke(app, ["measure", "--model", "cli_fixtures:make_keyword_mlp", "--data",
                                       "cli_fixtures:dict_data", "--observables", "sharpness", "--json"])
    assert keyword.exit_code == 0, keyword.output
    plain = measure(make_mlp(), named_loss("cross_entropy"), data(), "sharpness", seed=0)
    # the same network behind a dict input and a tuple output: the same float64 numbers
    assert json.loads(keyword.stdout)["results"]["sharpness"]["eigenvalues"] == plain.to_json()["sharpness"]["eigenvalues"]
    del make_keyword_mlp


def test_json_has_no_nan(monkeypatch):
    """A non-finite result prints null, never the bare NaN that JSON does not have."""
    import lmech.cli.commands as cli_app

    monkeypatch.setattr(cli_app, "_measured", lambda call: _with_nan(call()))
    result = _run("--observables", "hessian_trace", "--set", "hessian_trace.num_probes=2", "--json")
    assert result.exit_code == 0, result.output
    assert "NaN" not in result.stdout and json.loads(result.stdout)["results"]["hessian_trace"]["standard_error"] is None


def _with_nan(measurement):
    import dataclasses

    trace = measurement["hessian_trace"]
    return type(measurement)({"hessian_trace": dataclasses.replace(trace, standard_error=float("nan"))})
