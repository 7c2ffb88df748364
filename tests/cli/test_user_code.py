"""user_code (import a user's factory/data, load weights safely) and `lmech fit noise-scale`."""

import json
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from lmech.cli import app
from lmech.errors import InputError
from lmech.cli.user_code import load_data, load_factory, load_model, task_data

MODULE = textwrap.dedent("""
    import torch

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))

    def not_a_model():
        return 3

    def data():
        g = torch.Generator().manual_seed(0)
        return torch.randn(300, 64, generator=g), torch.randint(0, 10, (300,), generator=g)

    def ragged():
        return torch.zeros(5, 64), torch.zeros(4, dtype=torch.long)
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"lmech_user_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_loads_factory_model_weights_and_data(user_module, tmp_path):
    model = load_model(f"{user_module}:net")
    path = tmp_path / "w.pt"
    state = {k: v + 1.0 for k, v in model.state_dict().items()}
    torch.save(state, path)
    loaded = load_model(f"{user_module}:net", path)
    assert torch.equal(loaded.state_dict()["0.weight"], state["0.weight"])
    x, y = load_data(f"{user_module}:data")
    assert x.shape == (300, 64) and y.shape == (300,)
    x, y = task_data("digits")
    assert x.shape[1] == 64 and y.dtype == torch.int64


@pytest.mark.parametrize("spec, fragment", [
    ("no_colon", "expected 'package.module:function'"),
    ("lmech_no_such_module_xyz:net", "cannot import module"),
    ("{m}:missing", "has no attribute 'missing'"),
])
def test_bad_factory_specs(user_module, spec, fragment):
    with pytest.raises(InputError, match=fragment):
        load_factory(spec.format(m=user_module))


def test_bad_models_weights_and_data(user_module, tmp_path):
    with pytest.raises(InputError, match="not a torch.nn.Module"):
        load_model(f"{user_module}:not_a_model")
    with pytest.raises(InputError, match="weights file not found"):
        load_model(f"{user_module}:net", tmp_path / "absent.pt")
    torch.save({"other": torch.zeros(2)}, tmp_path / "keys.pt")
    with pytest.raises(InputError, match="missing '0.weight'"):
        load_model(f"{user_module}:net", tmp_path / "keys.pt")
    state = load_model(f"{user_module}:net").state_dict()
    state["0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "shape.pt")
    with pytest.raises(InputError, match="has shape"):
        load_model(f"{user_module}:net", tmp_path / "shape.pt")
    torch.save(object(), tmp_path / "pickle.pt")  # a pickled object: weights_only refuses it
    with pytest.raises(InputError, match="weights_only=True"):
        load_model(f"{user_module}:net", tmp_path / "pickle.pt")
    with pytest.raises(InputError, match=r"must return \(inputs, targets\)"):
        load_data(f"{user_module}:net")
    with pytest.raises(InputError, match="equal counts"):
        load_data(f"{user_module}:ragged")
    with pytest.raises(InputError, match="unknown task"):
        task_data("no_such_task")


def test_cli_noise_scale_json_and_bad_input(user_module):
    runner = CliRunner()
    result = runner.invoke(app, ["fit", "noise-scale", "--model", f"{user_module}:net", "--data",
                                 f"{user_module}:data", "--pairs", "4", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["b_crit"] == out["b_simple"] > 0 and out["b_crit_lo"] < out["b_crit"] < out["b_crit_hi"]
    for args, fragment in (
        (["--model", f"{user_module}:missing", "--task", "digits"], "has no attribute"),
        (["--model", f"{user_module}:net"], "exactly one of --task"),
        (["--model", f"{user_module}:net", "--task", "digits", "--loss", "hinge"], "--loss must be"),
        (["--model", f"{user_module}:net", "--task", "teacher_student"], "cannot run on this data"),
    ):
        bad = runner.invoke(app, ["fit", "noise-scale", *args])
        assert bad.exit_code == 2, bad.output
        lines = [line for line in bad.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and fragment in lines[0], bad.stderr
