"""`lmech forecast max-lr` and `lmech forecast batch` on examples/forecast_model.py: JSON, --check, bad input."""

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


def _run(*args: str):
    return CliRunner().invoke(app, ["forecast", *args])


def _one_line_exit_2(result, words: str):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert "Traceback" not in result.output


def test_max_lr_json_and_check(tmp_path):
    result = _run("max-lr", *MODEL, "--check", "--check-steps", "100", "--reports", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["name"] == "max-lr" and printed["unit"] == "learning rate" and printed["track_record"] is None
    low, high = printed["interval"]
    assert printed["forecast"] == low and high == pytest.approx(2 * low)
    assert printed["details"]["curvature"] * printed["forecast"] == pytest.approx(2.0)
    check = printed["check"]
    assert check["passed"] and low <= check["divergence_lr"] <= high


def test_max_lr_adam_json_has_an_open_interval(tmp_path):
    result = _run("max-lr", *MODEL, "--optimizer", "adam", "--reports", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["interval"][1] is None  # [38/λ_P, inf): JSON has no infinity
    assert printed["forecast"] * printed["details"]["curvature"] == pytest.approx(38.0)


def test_batch_json_and_check(tmp_path):
    result = _run("batch", *MODEL, "--batches", "2,4,8,16,64", "--draws", "24", "--check", "--reports",
                  str(tmp_path), "--json")
    assert result.exit_code in (0, 1), result.output
    printed = json.loads(result.stdout)
    assert printed["name"] == "batch" and printed["forecast"] > 0
    assert set(printed["details"]["lr_at_batch"]) == {"2", "4", "8", "16", "64"}
    assert [row["batch"] for row in printed["check"]["rows"]] == [16, 64]
    assert (result.exit_code == 0) == printed["check"]["passed"]


@pytest.mark.parametrize("args,words", [
    (["max-lr", *MODEL, "--optimizer", "rmsprop"], "--optimizer must be one of"),
    (["max-lr", *MODEL, "--optimizer", "momentum", "--momentum", "1.5"], "--momentum must be in [0, 1)"),
    (["max-lr", *MODEL, "--check-steps", "0"], "--check-steps must be >= 1"),
    (["max-lr", "--model", "examples.forecast_model:mlp"], "give exactly one of --task"),
    (["max-lr", "--model", "examples.forecast_model:nothing", "--data", "examples.forecast_model:regression"],
     "nothing"),
    (["max-lr", *MODEL, "--loss", "cross_entropy"], "cross_entropy"),
    (["batch", *MODEL, "--batches", "0,4,8,16"], "batch sizes must be >= 1"),
    (["batch", *MODEL, "--batches", "-2,4,8,16"], "batch sizes must be >= 1"),
    (["batch", *MODEL, "--batches", "2,4,x"], "comma-separated integers"),
    (["batch", *MODEL, "--batches", "2,4,8"], "need at least 2 fitted batches"),
    (["batch", *MODEL, "--batches", "2,4,8,16", "--check"], "spanning at least 32x"),
    (["batch", *MODEL, "--batches", "2,4,8,100000"], "at most the data size"),
    (["batch", *MODEL, "--optimizer", "adam"], "supports --optimizer sgd"),
    (["batch", *MODEL, "--draws", "0"], "--draws must be >= 1"),
])
def test_bad_input_is_one_line_exit_2(args, words):
    _one_line_exit_2(_run(*args), words)


def test_track_record_is_read_from_the_newest_report(tmp_path):
    folder = tmp_path / "atlas-1"
    folder.mkdir()
    (folder / "verdicts.json").write_text(json.dumps([{"name": "forecast-max-lr", "error": 0.0, "tolerance": 1.0,
                                                       "passed": True}]))
    (folder / "provenance.json").write_text(json.dumps({"date": "2026-12-01T12:00:00Z", "mode": "fast"}))
    result = _run("max-lr", *MODEL, "--reports", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["track_record"]
    assert record["passed"] and record["error"] == 0.0 and record["tolerance"] == 1.0 and record["mode"] == "fast"
