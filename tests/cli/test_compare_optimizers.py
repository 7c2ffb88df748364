"""`lmech compare-optimizers`: a small comparison end to end (table, JSON, figure) and each bad
input as one line with exit code 2."""

import json

import pytest
from typer.testing import CliRunner

from lmech.cli import app

runner = CliRunner()
SPEC = """task: {name: teacher_student, input_dim: 8, n_train: 64, n_test: 128, noise: 0.3}
model: {width: 16, depth: 1}
steps: 20
observe: {}
"""


def _spec(tmp_path, text=SPEC):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_comparison_json_table_and_figure(tmp_path):
    spec, runs = _spec(tmp_path), tmp_path / "runs"
    args = ["compare-optimizers", str(spec), "--optimizers", "adamw,sgd", "--lr-grid", "3e-3:3e-2:3",
            "--seeds", "3", "--runs", str(runs)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [o["label"] for o in out["optimizers"]] == ["adamw", "sgd"] and out["paired"]
    for o in out["optimizers"]:
        assert o["best_lr"] in o["lr_grid"] and len(o["test"]) == 3
        assert o["test_interval"][0] <= o["test_mean"] <= o["test_interval"][1]
    (d,) = out["differences"]
    assert d["difference"] == pytest.approx(out["optimizers"][0]["test_mean"] - out["optimizers"][1]["test_mean"])
    table = runner.invoke(app, [*args, "--figure", str(tmp_path / "f.png")])  # reuses the store's runs
    assert table.exit_code == 0 and "adamw - sgd" in table.stdout
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("extra, fragment", [
    (["--optimizers", "adamw"], "at least 2 optimizers"),
    (["--optimizers", "adamw,nadam"], "unknown optimizer 'nadam'"),
    (["--optimizers", "adamw,adamw"], "named twice"),
    (["--optimizers", "adamw,sgd", "--lr-grid", "1e-2"], "at least 2 values"),
    (["--optimizers", "adamw,sgd", "--lr-grid", "1e-1:1e-3:3"], "0 < low < high"),
    (["--optimizers", "adamw,sgd", "--lr-grid", "-1,1"], "positive"),
    (["--optimizers", "adamw,sgd", "--lr-grid", "a:b"], "--lr-grid"),
    (["--optimizers", "adamw,sgd", "--seeds", "1"], "at least 2 seeds"),
    (["--optimizers", "adamw,sgd", "--level", "1.5"], "level"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, extra, fragment):
    result = runner.invoke(app, ["compare-optimizers", str(_spec(tmp_path)), *extra, "--runs", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.output


def test_a_spec_with_sweep_axes_or_bad_fields_is_refused(tmp_path):
    for text, fragment in ((SPEC + "sweep: {seed: [0, 1]}\n", "sweep axes"), ("modle: {width: 3}\n", "modle")):
        result = runner.invoke(app, ["compare-optimizers", str(_spec(tmp_path, text)), "--optimizers", "adamw,sgd",
                                     "--runs", str(tmp_path / "r")])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert fragment in result.output
