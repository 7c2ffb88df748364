"""Recorder on a plain torch loop: one complete run in the store, instrument rows equal direct calls."""

import json

import pytest
import torch
from typer.testing import CliRunner

from lmech.cli import app
from lmech.errors import InputError
from lmech.instruments.sharpness import sharpness
from lmech.engine.recorder import Recorder
from lmech.store import Store


def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (32,), generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model, (x, y)


def ce(out, y):
    return torch.nn.functional.cross_entropy(out, y)


def test_plain_sgd_loop_records_a_complete_run(tmp_path):
    model, batch = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 12
    expected = {}
    with Recorder(tmp_path, ce, batch, observe={"sharpness": {"every": "log", "count": 4, "k": 2},
                                                "hessian_trace": {"every": 6, "num_probes": 4}},
                  total_steps=total, config={"lr": 0.1, "optimizer": "sgd"}, seed=5, name="mine") as rec:
        for step in range(total + 1):
            loss = ce(model(batch[0]), batch[1])
            rec(step, model, loss=loss)  # a tensor scalar is accepted
            if step in rec.steps("sharpness"):  # the instrument at the same parameters, called directly
                expected[step] = sharpness(model, ce, batch, k=2, seed=5)
            if step < total:
                opt.zero_grad()
                loss.backward()
                opt.step()
    store = Store(tmp_path)
    assert store.run_ids() == [rec.run_id] and rec.run_id.startswith("mine-")
    steps, values = store.series(rec.run_id, "sharpness/eigenvalues/0")
    assert steps == rec.steps("sharpness") == sorted(expected) and steps[0] == 0 and steps[-1] == total
    # same float64 computation at the same parameters and seed: bit-identical
    assert values == [float(expected[s].eigenvalues[0]) for s in steps]
    assert store.series(rec.run_id, "sharpness/eigenvalues/1")[1] == [float(expected[s].eigenvalues[1]) for s in steps]
    assert store.series(rec.run_id, "hessian_trace/estimate")[0] == [0, 6, 12]
    loss_steps, losses = store.series(rec.run_id, "loss")
    assert loss_steps == list(range(total + 1)) and losses[-1] < losses[0]  # SGD descended
    spec, summary = store.spec(rec.run_id), store.summary(rec.run_id)
    assert spec["config"] == {"lr": 0.1, "optimizer": "sgd"} and spec["seed"] == 5 and spec["steps"] == total
    assert summary["status"] == "completed" and summary["final"]["loss"] == losses[-1]
    assert summary["missed_observations"] == {} and "torch" in summary["versions"]
    params = store.params(rec.run_id)
    assert all(torch.equal(params[n], p) for n, p in model.named_parameters())
    sql = f"SELECT count(*) FROM metrics WHERE run_id = '{rec.run_id}' AND name = 'sharpness/eigenvalues/0'"
    assert store.query(sql) == [(len(steps),)]
    # the CLI lists and shows a run lmech did not train
    listed = json.loads(CliRunner().invoke(app, ["ls", "--runs", str(tmp_path), "--json"]).stdout)
    assert [r["run_id"] for r in listed["runs"]] == [rec.run_id]
    assert listed["runs"][0]["status"] == "completed" and listed["runs"][0]["task"] == "mine"
    shown = CliRunner().invoke(app, ["show", rec.run_id, "--runs", str(tmp_path), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["run_id"] == rec.run_id


def test_model_never_modified(tmp_path):
    model, batch = _setup(seed=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rec = Recorder(tmp_path, ce, batch, observe={"sharpness": {"every": 1}}, total_steps=1)
    rec(0, model)
    rec(1, model)
    rec.close()
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in model.named_parameters())
    assert rec.close() == Store(tmp_path).path(rec.run_id)  # idempotent


def test_exception_inside_with_writes_nothing(tmp_path):
    model, batch = _setup(seed=2)
    with pytest.raises(ZeroDivisionError):
        with Recorder(tmp_path, ce, batch, observe={"sharpness": {"every": 1}}, total_steps=3) as rec:
            rec(0, model, loss=1.0)
            1 / 0
    assert Store(tmp_path).run_ids() == []
    assert not any(p.name.startswith(rec.run_id) for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="abandoned"):
        rec.close()


def test_missed_final_step_is_reported(tmp_path):
    model, batch = _setup(seed=3)
    with Recorder(tmp_path, ce, batch, observe={"sharpness": {"every": 2}}, total_steps=4) as rec:
        for step in range(4):  # never reaches step 4
            rec(step, model)
    assert Store(tmp_path).summary(rec.run_id)["missed_observations"] == {"sharpness": [4]}


def test_bad_observe_fails_at_construction(tmp_path):
    _, batch = _setup()
    with pytest.raises(InputError, match="known: .*sharpness"):
        Recorder(tmp_path, ce, batch, observe={"sharpnes": {"every": 1}}, total_steps=3)
    with pytest.raises(InputError, match="unknown option"):
        Recorder(tmp_path, ce, batch, observe={"sharpness": {"every": 1, "kk": 2}}, total_steps=3)
    for schedule in ({"every": 0}, {"every": True}, {"every": "often"}, {"count": 0}, {"count": 2.5}):
        with pytest.raises(InputError, match=r"sharpness\.(every|count)"):
            Recorder(tmp_path, ce, batch, observe={"sharpness": schedule}, total_steps=3)
    with pytest.raises(InputError, match="run id"):
        Recorder(tmp_path, ce, batch, total_steps=3, run_id="../outside")
    assert list(tmp_path.iterdir()) == []  # nothing written by refused recorders
