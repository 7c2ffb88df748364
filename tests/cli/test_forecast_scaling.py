"""`lmech forecast lr-transfer | compute | curve`: bad input is one line and exit 2; tiny happy paths print JSON."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmech.cli import app

ROOT = Path(__file__).resolve().parents[2]
MODEL = ["--model", "examples.forecast_model:mlp", "--data", "examples.forecast_model:regression"]


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # `examples.forecast_model`, as from the repository root


def _run(*args):
    return CliRunner().invoke(app, ["forecast", *args])


def _one_line_exit_2(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args,words", [
    (["lr-transfer", "--target-width", "64", "--model", "tests.cli.cli_fixtures:make_mlp", "--task", "digits"],
     "no 'width' keyword"),
    (["lr-transfer", "--target-width", "64", *MODEL, "--lr-min", "0.01", "--lr-max", "0.015"], "at least 3"),
    (["lr-transfer", "--target-width", "0", *MODEL], "--target-width must be positive"),
    (["lr-transfer", "--target-width", "64", *MODEL, "--widths", "8,x"], "comma-separated integers"),
    (["lr-transfer", "--target-width", "64", *MODEL, "--optimizer", "rmsprop"], "--optimizer must be"),
    (["lr-transfer", "--target-width", "64", "--model", "examples.forecast_model:mlp"], "exactly one of --task"),
    (["compute", "--budgets", "1e6,-2e6", "--target-budget", "1e8", *MODEL], "must be positive"),
    (["compute", "--budgets", "1e6,2e6", "--target-budget", "0", *MODEL], "--target-budget must be positive"),
    (["compute", "--budgets", "10,20", "--target-budget", "100", *MODEL], "leaves 0 of the widths"),
    (["curve", "--lr", "0.1", "--steps", "50", *MODEL, "--schedule", "sawtooth"], "--schedule must be one of"),
    (["curve", "--lr", "0.1", "--steps", "50", "--model", "tests.cli.cli_fixtures:make_mlp", "--task", "digits"],
     "no 'width' keyword"),
    (["curve", "--lr", "0.1", "--steps", "50", *MODEL, "--batch-size", "0"], "--batch-size must be positive"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    assert words in _one_line_exit_2(_run(*args))


def test_lr_transfer_json_on_the_example_model():
    result = _run("lr-transfer", *MODEL, "--widths", "8,16,32", "--target-width", "64", "--steps", "20", "--seeds", "2",
                  "--lr-min", "0.002", "--lr-max", "1.0", "--lr-step", "1", "--json", "--reports", "no-such-folder")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["name"] == "lr-transfer" and out["unit"] == "learning rate" and out["track_record"] is None
    assert out["interval"][0] <= out["forecast"] <= out["interval"][1] and out["phenomenon"] == "forecast-lr-transfer"


def test_lr_transfer_says_when_its_track_record_used_another_optimizer():
    args = (*MODEL, "--widths", "8,16,32", "--target-width", "64", "--steps", "10", "--seeds", "1",
            "--lr-min", "0.002", "--lr-max", "1.0", "--lr-step", "1", "--reports", "no-such-folder")
    assert "scores SP with sgd, not adam" in _run("lr-transfer", *args, "--optimizer", "adam").stdout
    assert "not sgd" not in _run("lr-transfer", *args, "--optimizer", "sgd").stdout


def test_curve_json_and_check_on_the_example_model():
    result = _run("curve", *MODEL, "--lr", "0.05", "--steps", "40", "--seeds", "2", "--width", "16", "--json",
                  "--check")
    assert result.exit_code in (0, 1), result.output  # 1: the check failed (reported, not an error)
    out = json.loads(result.stdout)
    assert out["unit"] == "loss" and out["check"]["max_relative_error"] >= 0
    assert (result.exit_code == 0) == out["check"]["passed"]
