"""`lmech atlas` end to end: a second atlas run (here --resume --only, the same store) keeps the first's report."""

import json

import pytest
from typer.testing import CliRunner

from lmech.cli.commands import app


def _atlas(tmp_path, *extra):
    result = CliRunner().invoke(app, ["atlas", "--fast", "--only", "deep-linear-dynamics", "--runs",
                                      str(tmp_path / "runs"), "--report", str(tmp_path / "rep"), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_atlas_twice_keeps_both_reports(tmp_path):
    first = _atlas(tmp_path)
    second = _atlas(tmp_path, "--resume")
    assert first["report"] == second["report"] == str(tmp_path / "rep" / "index.html")
    folders = sorted(p.name for p in (tmp_path / "rep").iterdir() if p.is_dir())
    store = next((tmp_path / "runs").iterdir()).name
    assert folders == [store, f"{store}-2"]
    listing = (tmp_path / "rep" / "reports.html").read_text()
    assert all(f'href="{name}/index.html"' in listing for name in folders)
    page = (tmp_path / "rep" / store / "index.html").read_text()
    assert "<th>mode</th><td>fast</td>" in page and str((tmp_path / "runs" / store).resolve()) in page
    provenance = json.loads((tmp_path / "rep" / store / "provenance.json").read_text())
    assert len(provenance["runs"]["deep-linear-dynamics"]) >= 1  # the atlas store's run ids
    again = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep" / store)])
    assert again.exit_code == 0 and "passes when" in again.stdout
