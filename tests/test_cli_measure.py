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
from lmech.train.losses import loss_function

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
    out = json.loads(result.stdout)
    direct = measure(make_mlp().eval(), loss_function("cross_entropy"), data(), ["sharpness", "hessian_trace", "ntk_gram"],
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
    assert "eigenvalues/0" in result.stdout and "array (32, 32)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--observables", "sharpnes"], "unknown observable(s) sharpnes; known: sharpness"),
    (["--observables", "sharpness", "--set", "sharpness.kk=2"], "unknown option(s) kk for sharpness"),
    (["--observables", "sharpness", "--set", "k=2"], "--set expects instrument.option=value"),
    (["--observables", "sharpness", "--task", "digits"], "give exactly one of --task"),
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
    assert json.loads(ok.stdout)["sharpness"]["converged"] is True
