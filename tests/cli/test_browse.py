"""`lmech plot` and `lmech export` through typer: figures and files written, one JSON object with
--json, bad input as one line on stderr with exit code 2."""

import csv
import json

import pytest
import typer
from typer.testing import CliRunner

from lmech.cli.browse import register
from tests.report.test_plot import LRS, REL, make_store


@pytest.fixture(scope="module")
def app():
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return app


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse-store")
    make_store(root)
    return root


def _invoke(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_plot_writes_the_figure_and_reports_the_means(app, runs, tmp_path):
    out = tmp_path / "figs" / "loss.png"
    result = _invoke(app, "plot", "loss/train", "--runs", runs, "--color-by", "optimizer_lr", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads(result.stdout)
    assert report["figure"] == str(out) and report["band"] == "minmax"
    expected = make_means(runs)
    for line, lr in zip(report["lines"], LRS):
        assert line["label"] == f"optimizer_lr={lr:g} (3 runs)"
        assert line["x"] == [s for s, _ in expected[lr]]
        assert all(abs(y - m) <= REL * abs(m) for y, (_, m) in zip(line["mean"], expected[lr]))


def make_means(runs):
    from lmech.store import Store

    rows = Store(runs).query("select r.optimizer_lr, m.step, avg(m.value) from metrics m join runs r "
                             "using (run_id) where m.name = 'loss/train' group by all order by 1, 2")
    return {lr: [(float(s), v) for r_lr, s, v in rows if r_lr == lr] for lr in LRS}


def test_plot_final_value_vs_field_in_plain_text(app, runs, tmp_path):
    out = tmp_path / "final.svg"
    result = _invoke(app, "plot", "loss/test", "--runs", runs, "--x", "optimizer_lr", "--band", "se",
                     "--sweep", "lr", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"figure: {out} (1 line)\n" and out.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("args, words", [
    (["plot", "loss/nope"], "unknown metric 'loss/nope'"),
    (["plot", "loss/train", "--color-by", "lr"], "unknown color_by field 'lr'"),
    (["plot", "loss/train", "--where", "seed >"], "invalid where"),
    (["plot", "loss/train", "--sweep", "other"], "no runs have metric"),
    (["export", "parquet", "--out", "x"], "unknown export format 'parquet'"),
    (["export", "csv", "--out", "x.csv", "--where", "seed > 99"], "no runs to export"),
])
def test_bad_input_is_one_line_and_exit_2(app, runs, tmp_path, args, words):
    args = [a if a not in ("x", "x.csv") else tmp_path / a for a in args]
    result = _invoke(app, *args, "--runs", runs)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert result.stdout == ""


def test_missing_store_is_one_line(app, tmp_path):
    result = _invoke(app, "plot", "loss/train", "--runs", tmp_path / "none")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no store at {tmp_path / 'none'} (pass --runs DIR)"


def test_export_csv_json_and_refusal_to_overwrite(app, runs, tmp_path):
    out = tmp_path / "all.csv"
    result = _invoke(app, "export", "csv", "--runs", runs, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert report == {"format": "csv", "out": str(out), "runs": 6, "rows": len(rows)} and len(rows) == 6 * 8
    again = _invoke(app, "export", "csv", "--runs", runs, "--out", out)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_export_wandb_keeps_stdout_one_json_object(app, runs, tmp_path):
    pytest.importorskip("wandb")
    result = _invoke(app, "export", "wandb", "--runs", runs, "--out", tmp_path / "wb", "--sweep", "lr", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"format": "wandb", "out": str(tmp_path / "wb"), "runs": 6, "rows": 48}
    assert len(list((tmp_path / "wb" / "wandb").glob("offline-run-*"))) == 6
