"""The `lmech` command: JSON output, exit codes, and one-line errors for bad input."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lmech.cli import app

runner = CliRunner()


def _invoke(*args):
    return runner.invoke(app, list(args))


def _assert_bad_input(result, fragment):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_unknown_phenomenon(tmp_path):
    _assert_bad_input(_invoke("run", "no-such-thing", "--runs", str(tmp_path)), "unknown phenomenon 'no-such-thing'")


def test_unknown_field_in_spec(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("steps: 3\nmodle: {width: 3}\n")
    _assert_bad_input(_invoke("sweep", str(spec), "--runs", str(tmp_path / "r")), "modle")


def test_wrong_type_and_allowed_values(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("steps: many\n")
    _assert_bad_input(_invoke("sweep", str(spec), "--runs", str(tmp_path)), "steps")
    result = _invoke("sweep", "--set", "optimizer.name=sgdd", "--runs", str(tmp_path))
    _assert_bad_input(result, "'sgd', 'adam', 'adamw', 'muon'")


def test_unknown_sweep_axis_and_observable(tmp_path):
    _assert_bad_input(_invoke("sweep", "--set", "sweep={optimizer.lrr: [1]}", "--runs", str(tmp_path)),
                      "optimizer.lrr")
    _assert_bad_input(_invoke("sweep", "--set", "observe={curvature: {}}", "--set", "steps=1",
                              "--runs", str(tmp_path)), "unknown observable 'curvature'")


def test_missing_file_and_bad_yaml(tmp_path):
    _assert_bad_input(_invoke("sweep", str(tmp_path / "nope.yaml")), "not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    _assert_bad_input(_invoke("sweep", str(bad)), "not valid YAML")


def test_sweep_json_ls_show_and_corrupt_run(tmp_path):
    runs = str(tmp_path / "runs")
    result = _invoke("sweep", "--set", "steps=3", "--set", "model.width=4", "--set", "sweep={seed: [0, 1]}",
                     "--runs", runs, "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["trained"] == 2 and len(outcome["runs"]) == 2
    listed = json.loads(_invoke("ls", "--runs", runs, "--json").stdout)
    assert {r["run_id"] for r in listed["runs"]} == {r["run_id"] for r in outcome["runs"]}
    run_id = outcome["runs"][0]["run_id"]
    shown = json.loads(_invoke("show", run_id, "--runs", runs, "--json").stdout)
    assert shown["spec"]["steps"] == 3 and shown["summary"]["status"] == "completed"
    (tmp_path / "runs" / run_id / "summary.json").write_text("{oops")
    _assert_bad_input(_invoke("show", run_id, "--runs", runs), "is incomplete: summary.json is not valid JSON")
    _assert_bad_input(_invoke("show", "feedbeef", "--runs", runs), "no run 'feedbeef'")


def test_run_phenomenon_json_and_report(tmp_path):
    result = _invoke("atlas", "--fast", "--only", "deep-linear-dynamics", "--runs", str(tmp_path / "r"),
                     "--report", str(tmp_path / "rep"), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] and payload["verdicts"][0]["name"] == "deep-linear-dynamics"
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "data:image/png;base64," in page and "Saxe" in page
    again = _invoke("report", "--out", str(tmp_path / "rep"))
    assert again.exit_code == 0 and "deep-linear-dynamics" in again.stdout
    rendered = _invoke("report", "--out", str(tmp_path / "rep"), "--json")
    assert rendered.exit_code == 0 and json.loads(rendered.stdout)["verdicts"] == payload["verdicts"]
    # a failed verdict in the saved report: exit 1, as the atlas itself would
    saved = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
    _fail_all(saved)
    (tmp_path / "rep" / "verdicts.json").write_text(json.dumps(saved))
    failed = _invoke("report", "--out", str(tmp_path / "rep"), "--json")
    assert failed.exit_code == 1 and json.loads(failed.stdout)["passed"] is False


def _fail_all(tree):
    """Set every `passed` flag in a saved verdicts file to False (whatever its nesting)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "passed":
                tree[key] = False
            else:
                _fail_all(value)
    elif isinstance(tree, list):
        for value in tree:
            _fail_all(value)


def test_real_entry_point_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lmech.cli", "show", "nothing", "--runs", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_help_lists_phenomena_and_shows_flags_as_flags():
    from lmech.phenomena import PHENOMENA

    for command in ("run", "atlas"):
        result = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert all(name in text for name in PHENOMENA), text
        assert "<bool>" not in result.output and "--fast" in result.output
