"""The README's user-factory sweep runs end to end from the repository root; bad factories are one line."""

import json
from pathlib import Path

from typer.testing import CliRunner

from lmech.cli import app

ROOT = Path(__file__).parents[2]


def test_factory_sweep_example_runs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the example's factory is examples.my_model:mlp, found from the root
    args = ["sweep", "examples/factory_sweep.yaml", "--runs", str(tmp_path), "--set", "steps=20", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert out["trained"] == 6 and out["diverged"] == 0
    assert all(r["model"] == "factory examples.my_model:mlp" for r in out["runs"])
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["trained"] == 0 and again["skipped"] == 6


def test_bad_factories_exit_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_models.py").write_text(
        "import torch\n\ndef raises():\n    raise ValueError('bad width')\n\ndef not_module():\n    return 3\n\n"
        "def wrong_outputs():\n    return torch.nn.Linear(64, 4)\n")
    for factory, message in [("user_models:raises", "raised ValueError: bad width"),
                             ("user_models:not_module", "not a torch.nn.Module"),
                             ("user_models:wrong_outputs", "do not fit the task's targets"),
                             ("no_such_module:f", "cannot import module"),
                             ("not a factory string", "factory")]:
        result = CliRunner().invoke(app, ["sweep", "--set", "model.kind=factory", "--set", f"model.factory={factory}",
                                          "--set", "steps=2", "--runs", str(tmp_path / "runs")])
        assert result.exit_code == 2, (factory, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (factory, result.stderr)
    assert not any((tmp_path / "runs").glob("*/summary.json")) if (tmp_path / "runs").exists() else True
