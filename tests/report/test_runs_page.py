"""The run browser's data and page: every complete run with its fields and thinned series, user text
that cannot close the data element, and `lmech report --runs` writing it (one line on bad input)."""

import json

from typer.testing import CliRunner

from lmech.cli import app
from lmech.report.runs_page import _thin, runs_page_data, write_runs_page
from lmech.store import Store

EVIL = '</script><script>window.__pwned = 1</script>"'


def make_store(root, n_runs: int = 6, steps: int = 50) -> Store:
    """Runs with an lr, a width and a seed each; loss/train decays at a rate set by the lr."""
    store = Store(root)
    for i in range(n_runs):
        lr, width = [0.01, 0.1][i % 2], [8, 16, 32][i % 3]
        rows = [(s, "loss/train", float((1 + s) ** -lr * 2)) for s in range(0, steps + 1, 5)]
        rows += [(steps, "accuracy/test", 0.5 + 0.01 * i)]
        spec = {"task": {"name": "digits"}, "model": {"width": width}, "optimizer": {"lr": lr}, "seed": i,
                "note": EVIL if i == 0 else "plain"}
        store.write(f"{i:016x}", spec, rows, {"status": "completed", "sweep": EVIL if i == 0 else "scan",
                                              "created": f"2026-01-01T00:00:{i:02d}"})
    return store


def test_data_has_every_run_and_its_series(tmp_path):
    store = make_store(tmp_path / "runs")
    data = runs_page_data(store)
    assert len(data["rows"]) == 6 and data["omitted"] == 0
    col = data["columns"].index
    assert {row[col("optimizer_lr")] for row in data["rows"]} == {0.01, 0.1}
    assert data["rows"][0][col("run_id")] == f"{5:016x}"  # newest first
    loss = data["series"][f"{0:016x}"]["loss/train"]
    assert loss[0] == [0, 2.0] and len(loss) == 11


def test_runs_beyond_the_limit_are_counted_and_series_thinned(tmp_path):
    store = make_store(tmp_path / "runs", n_runs=5, steps=500)
    data = runs_page_data(store, max_runs=3, max_points=20)
    assert len(data["rows"]) == 3 and data["omitted"] == 2
    assert all(len(s["loss/train"]) == 20 for s in data["series"].values())
    points = [(i, float(i)) for i in range(101)]
    thinned = _thin(points, 11)
    assert thinned[0] == points[0] and thinned[-1] == points[-1] and len(thinned) == 11


def test_user_text_cannot_close_the_data_element(tmp_path):
    page = write_runs_page(make_store(tmp_path / "runs"), tmp_path / "out")
    text = page.read_text()
    assert text.count("</script>") == 2  # the data element's and runs.js's own, nothing from the store
    start = text.index('id="data">') + len('id="data">')
    data = json.loads(text[start:text.index("</script>", start)])
    assert EVIL in json.dumps(data, ensure_ascii=False) or any(EVIL in str(v) for row in data["rows"] for v in row)
    assert (page.parent / "runs.js").read_text().startswith("// lmech run browser")


def test_report_runs_writes_the_browser_and_refuses_a_missing_store(tmp_path):
    make_store(tmp_path / "runs")
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--json"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)["page"]
    assert page.endswith("runs/runs/index.html") and (tmp_path / "rep" / "runs" / "runs" / "runs.js").is_file()
    bad = runner.invoke(app, ["report", "--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "rep")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1 and "no store" in bad.output
