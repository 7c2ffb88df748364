"""Per-atlas report folders, the index of reports, provenance, the pass rule and escaping."""

import json
import re

import matplotlib

matplotlib.use("Agg")

from lmech.phenomena.verdict import Comparison, Verdict, figure_png
from lmech.report import formula_svg, list_reports, load_verdicts, rerender_report, write_report
from lmech.store import Store


def _png() -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return figure_png(fig)


def _verdict(name: str, passed: bool = True, metric: str = "max relative error", error: float = 0.05,
             tolerance: float = 0.1, details: dict | None = None, **text) -> Verdict:
    comparison = Comparison(text.get("prediction", "risk 1..2"), text.get("measurement", "risk 1.1..2.1"), metric,
                            error, tolerance, passed, details or {"peak_next_to_one": passed})
    return Verdict(name, text.get("claim", "a claim"), text.get("formula", "R(γ) = σ²γ/(1−γ),  e^{2 s t}"),
                   text.get("source", "Saxe et al. 2014"), comparison, 1.5, _png())


def _store_with_runs(root, sweep: str, ids: list[str]) -> Store:
    store = Store(root)
    for run_id in ids:
        store.write(run_id, {"name": sweep}, [(0, "loss/train", 1.0)], {"status": "completed", "sweep": sweep})
    return store


def test_full_then_only_keeps_both_reports(tmp_path):
    out = tmp_path / "rep"
    full_store = _store_with_runs(tmp_path / "runs" / "atlas-20260101-000000-1", "alpha", ["aaaaaaaaaaaaaaaa"])
    full = [_verdict("alpha"), _verdict("beta", passed=False)]
    write_report(full, out, store=full_store, fast=False)
    only_store = tmp_path / "runs" / "atlas-fast-20260101-000100-2"
    _store_with_runs(only_store, "alpha", ["bbbbbbbbbbbbbbbb"])
    page = write_report([_verdict("alpha")], out, store=only_store, fast=True)

    full_page = out / "atlas-20260101-000000-1" / "index.html"
    only_page = out / "atlas-fast-20260101-000100-2" / "index.html"
    assert page == out / "index.html" and full_page.is_file() and only_page.is_file()
    assert "beta" in full_page.read_text() and "beta" not in only_page.read_text()  # the full one is intact
    listing = (out / "reports.html").read_text()
    assert 'href="atlas-20260101-000000-1/index.html"' in listing
    assert 'href="atlas-fast-20260101-000100-2/index.html"' in listing
    assert [r["name"] for r in list_reports(out)][0] == "atlas-fast-20260101-000100-2"  # newest first
    root = page.read_text()  # the newest report, with the list of every report above it
    assert 'href="atlas-20260101-000000-1/index.html"' in root and "1/2" in root and "1/1" in root
    # the verdicts are kept beside each page, figures too
    assert [v.name for v in load_verdicts(full_page.parent)] == ["alpha", "beta"]
    assert load_verdicts(full_page.parent)[0].figure_png == full[0].figure_png


def test_same_store_twice_never_overwrites(tmp_path):
    store = tmp_path / "runs" / "atlas-fast-x"
    store.mkdir(parents=True)
    write_report([_verdict("alpha"), _verdict("beta")], tmp_path / "rep", store=store, fast=True)
    write_report([_verdict("alpha")], tmp_path / "rep", store=store, fast=True)  # e.g. atlas --resume --only
    assert len(load_verdicts(tmp_path / "rep" / "atlas-fast-x")) == 2
    assert len(load_verdicts(tmp_path / "rep" / "atlas-fast-x-2")) == 1
    assert len(list_reports(tmp_path / "rep")) == 2


def test_provenance_on_every_page(tmp_path):
    import lmech
    import torch

    store = _store_with_runs(tmp_path / "atlas-fast-1", "alpha", ["0123456789abcdef", "fedcba9876543210"])
    page = write_report([_verdict("alpha")], tmp_path / "rep", store=store, fast=True)
    for html in (page, tmp_path / "rep" / "atlas-fast-1" / "index.html"):
        text = html.read_text()
        assert re.search(r"<th>date</th><td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", text)
        assert "<th>mode</th><td>fast</td>" in text
        assert f"<th>lmech</th><td>{lmech.__version__}</td>" in text
        assert f"<th>torch</th><td>{torch.__version__}</td>" in text
        assert "<th>machine</th><td>Linux" in text or "<th>machine</th><td>" in text
        assert str((tmp_path / "atlas-fast-1").resolve()) in text
        assert "0123456789abcdef" in text and "fedcba9876543210" in text  # spec hashes = run ids
    provenance = json.loads((tmp_path / "rep" / "atlas-fast-1" / "provenance.json").read_text())
    assert provenance["mode"] == "fast" and provenance["runs"]["alpha"] == ["0123456789abcdef", "fedcba9876543210"]
    full = write_report([_verdict("alpha")], tmp_path / "rep2", store=tmp_path / "atlas-2", fast=False)
    assert "<th>mode</th><td>full</td>" in full.read_text()


def test_passes_when_is_derived_from_the_comparison(tmp_path):
    at_most = _verdict("alpha", metric="max relative error", tolerance=0.25, details={"peak_next_to_one": True})
    at_least = _verdict("beta", metric="delay ratio at baseline, must be >= tolerance", error=7.0, tolerance=5.0,
                        details={"ordering_holds": True, "table": [1, 2]})
    explicit = Verdict("gamma", "c", "f", "s", Comparison("p", "m", "drift", 3.0, 2.0, True, {}, direction=">="), 1.0)
    assert at_most.comparison.passes_when == "max relative error ≤ 0.25; and true: peak next to one"
    assert at_least.comparison.passes_when == "delay ratio at baseline ≥ 5; and true: ordering holds"
    assert explicit.comparison.passes_when == "drift ≥ 2"
    page = write_report([at_most, at_least, explicit], tmp_path / "rep").read_text()
    assert "<th>passes when</th>" in page and "delay ratio at baseline ≥ 5" in page
    # the rule survives the verdicts file (lmech report renders the same page)
    again = load_verdicts(tmp_path / "rep")
    assert [v.comparison.passes_when for v in again] == [v.comparison.passes_when for v in (at_most, at_least, explicit)]
    assert json.loads((tmp_path / "rep" / "verdicts.json").read_text())[1]["direction"] == ">="


def test_formulas_are_inline_svg_without_text(tmp_path):
    svg = formula_svg("u(t) = s e^{2 s lr t} / (e^{2 s lr t} - 1),  N^-α, λ_max $5 <b>")
    assert svg.startswith("<svg") and "<path" in svg and "<!--" not in svg and "<b>" not in svg
    assert formula_svg("unbalanced ^{ and $ and \\frac{") .startswith("<svg")  # never fails: plainer text
    page = write_report([_verdict("alpha")], tmp_path / "rep").read_text()
    assert '<span class="formula"><svg role="img" aria-label="R(γ) = σ²γ/(1−γ),  e^{2 s t}"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', "")  # nothing fetched: no CDN, no network
    assert "<script" not in page


def test_user_text_is_escaped(tmp_path):
    evil = '<script>alert("x")</script>'
    store = tmp_path / f'atlas-{evil.replace("/", "_")}'
    store.mkdir()
    verdict = _verdict(f"bad {evil}", claim=f'claim "{evil}"', formula=f"a^{{2}} {evil}",
                       prediction=evil, measurement='he said "hi"', metric=f"metric {evil}")
    page = write_report([verdict], tmp_path / "rep", store=store, fast=True)
    for html in (page, *(p / "index.html" for p in (tmp_path / "rep").iterdir() if p.is_dir()),
                 tmp_path / "rep" / "reports.html"):
        text = html.read_text()
        assert "<script" not in text, html
        assert "&lt;script&gt;" in text
    text = page.read_text()
    assert "he said &#34;hi&#34;" in text or "he said &quot;hi&quot;" in text
    assert 'aria-label="a^{2} &lt;script&gt;alert(&#34;x&#34;)' in text
    # the figure file name never follows a path from the phenomenon's name
    assert all("/" not in p.name and "<" not in p.name for p in (tmp_path / "rep").rglob("*.png"))
    assert load_verdicts(tmp_path / "rep")[0].figure_png is not None


def test_rerender_keeps_the_layout(tmp_path):
    out = tmp_path / "rep"
    write_report([_verdict("alpha")], out, store=tmp_path / "atlas-1", fast=True)
    write_report([_verdict("beta")], out, store=tmp_path / "atlas-2", fast=True)
    verdicts, page = rerender_report(out)
    assert page == out / "index.html" and [v.name for v in verdicts] == ["beta"]
    assert 'href="atlas-1/index.html"' in page.read_text() and "<th>mode</th><td>fast</td>" in page.read_text()
    verdicts, page = rerender_report(out / "atlas-1")
    assert page == out / "atlas-1" / "index.html" and [v.name for v in verdicts] == ["alpha"]
    assert len(list_reports(out)) == 2
    # a report folder from before provenance.json still renders
    (out / "atlas-1" / "provenance.json").unlink()
    _, page = rerender_report(out / "atlas-1")
    assert "not recorded" in page.read_text()


def test_each_verdict_has_its_own_page_and_its_history_across_atlas_runs(tmp_path):
    from lmech.report.html import verdict_history

    out = tmp_path / "rep"
    write_report([_verdict("alpha"), _verdict("beta", passed=False)], out,
                 store=_store_with_runs(tmp_path / "runs" / "atlas-20260101-000000-1", "alpha", ["aaaaaaaaaaaaaaaa"]),
                 fast=False)
    write_report([_verdict("alpha", passed=False)], out,
                 store=_store_with_runs(tmp_path / "runs" / "atlas-fast-20260101-000100-2", "alpha", ["bbbbbbbbbbbbbbbb"]),
                 fast=True)
    history = verdict_history(out)
    assert [h["folder"] for h in history["alpha"]] == ["atlas-fast-20260101-000100-2", "atlas-20260101-000000-1"]
    assert [h["passed"] for h in history["alpha"]] == [False, True] and len(history["beta"]) == 1
    page = (out / "atlas-fast-20260101-000100-2" / "alpha.html").read_text()  # the history up to this report
    assert "History of this verdict" in page and page.count('<tr><td><a href="../atlas-') == 2
    assert (out / "atlas-20260101-000000-1" / "alpha.html").read_text().count('<tr><td><a href="../atlas-') == 1
    single = (out / "atlas-20260101-000000-1" / "alpha.html").read_text()
    assert single.count("<section") == 1 and 'id="beta"' not in single  # one phenomenon only
    root = (out / "index.html").read_text()
    assert 'href="atlas-fast-20260101-000100-2/runs/index.html"' in root  # the atlas store's run browser
    assert (out / "atlas-fast-20260101-000100-2" / "runs" / "runs.js").is_file()
