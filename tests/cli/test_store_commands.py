"""`lmech ls`, `show` and `doctor` on hostile and damaged stores: markup shown as text, ids never
paths, damage listed; nothing outside the store read or touched."""

import json

from typer.testing import CliRunner

from lmech.cli import app
from lmech.store import Store


def _write(store, run_id, task_name):
    store.write(run_id, {"task": {"name": task_name}, "seed": 0, "steps": 1}, [(0, "loss/train", 1.0)],
                {"status": "completed", "final": {"loss/train": 1.0}})


def test_markup_in_names_is_shown_as_text(tmp_path):
    store = Store(tmp_path / "runs")
    _write(store, "bold-run", "[/oops][bold red]x[link=file:///etc]y")
    result = CliRunner().invoke(app, ["ls", "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "[/oops]" in result.stdout and "[bold red]" in result.stdout  # printed, not interpreted


def test_show_takes_ids_not_paths_and_names_damage(tmp_path):
    (tmp_path / "secret.json").write_text(json.dumps({"x": 1}))
    store = Store(tmp_path / "runs")
    _write(store, "good", "digits")
    before = sorted(p.name for p in tmp_path.iterdir())
    for hostile in ("../secret.json", "..", "/etc/passwd", "a/b"):
        result = CliRunner().invoke(app, ["show", hostile, "--runs", str(tmp_path / "runs")])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, (hostile, result.output)
    (tmp_path / "runs" / "good" / "metrics.parquet").write_bytes(b"garbage")
    damaged = CliRunner().invoke(app, ["show", "good", "--runs", str(tmp_path / "runs")])
    assert damaged.exit_code == 2 and "is incomplete: metrics.parquet" in damaged.stderr
    doctor = CliRunner().invoke(app, ["doctor", "--runs", str(tmp_path / "runs"), "--json"])
    assert doctor.exit_code == 1 and not json.loads(doctor.stdout)["ok"]
    repaired = CliRunner().invoke(app, ["doctor", "--runs", str(tmp_path / "runs"), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert CliRunner().invoke(app, ["doctor", "--runs", str(tmp_path / "runs")]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "secret.json").exists()


def test_ls_filters_and_show_takes_a_short_prefix(tmp_path):
    runs = str(tmp_path / "runs")
    sweep = CliRunner().invoke(app, ["sweep", "--set", "name=scan", "--set", "steps=2", "--set", "model.width=4",
                                     "--set", "sweep={optimizer.lr: [0.05, 0.2], seed: [0, 1]}", "--runs", runs, "--json"])
    assert sweep.exit_code == 0, sweep.output
    every = json.loads(CliRunner().invoke(app, ["ls", "--runs", runs, "--json"]).stdout)["runs"]
    high = json.loads(CliRunner().invoke(app, ["ls", "--runs", runs, "--where", "optimizer_lr > 0.1",
                                               "--json"]).stdout)["runs"]
    assert len(every) == 4 and len(high) == 2 and all(r["optimizer"] == "sgd lr=0.2" for r in high)
    assert len(json.loads(CliRunner().invoke(app, ["ls", "--runs", runs, "--sweep", "scan", "--limit", "3",
                                                   "--json"]).stdout)["runs"]) == 3
    assert json.loads(CliRunner().invoke(app, ["ls", "--runs", runs, "--sweep", "other", "--json"]).stdout)["runs"] == []
    bad = CliRunner().invoke(app, ["ls", "--runs", runs, "--where", "no_such_column = 1"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1
    run_id = every[0]["run_id"]
    shown = CliRunner().invoke(app, ["show", run_id[:6], "--runs", runs, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["run_id"] == run_id
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.startswith("lmech ")
