"""The report pages in a real headless Chromium (Playwright), served by `lmech serve`'s server.

Needs the playwright package and a Chromium binary (Debian's `chromium`, or LMECH_CHROMIUM=path);
skipped without them. Every request other than to the local server is aborted and counted.
"""

import os
import shutil
import threading

import pytest

from tests.report.test_html import _store_with_runs, _verdict

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

EVIL = '<script>window.__pwned = 1</script>'


def _chromium() -> str | None:
    for candidate in (os.environ.get("LMECH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                      "google-chrome-stable"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from lmech.report import write_report
    from lmech.report.serve import make_server

    tmp = tmp_path_factory.mktemp("browser")
    out = tmp / "rep"
    full = _store_with_runs(tmp / "runs" / "atlas-20260101-000000-1", "alpha", ["aaaaaaaaaaaaaaaa"])
    write_report([_verdict("alpha"), _verdict("beta", passed=False, formula="λ_max(P⁻¹H) → 2/η,  N^-α")],
                 out, store=full, fast=False)
    write_report([_verdict(f"gamma {EVIL}", claim=f'"quoted" {EVIL}', formula=f"x^{{2}} {EVIL}",
                           measurement=EVIL)], out, store=tmp / "runs" / "atlas-fast-20260101-000100-2", fast=True)
    server = make_server(out, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set LMECH_CHROMIUM)")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, headless=True, args=args)
        yield instance
        instance.close()


def _load(browser, base: str, path: str):
    """The page at base+path, and what went wrong while loading it (console errors, failed or outside requests)."""
    context = browser.new_context()
    problems: list[str] = []

    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            problems.append(f"request outside the report: {r.request.url}")
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} {r.failure}"))
    response = page.goto(base + path, wait_until="load")
    assert response is not None and response.status == 200, path
    return context, page, problems


PAGES = ("index.html", "reports.html", "atlas-20260101-000000-1/index.html", "atlas-fast-20260101-000100-2/index.html",
         "atlas-20260101-000000-1/beta.html")


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_cleanly(browser, site, path):
    context, page, problems = _load(browser, site, path)
    try:
        assert problems == []
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
        assert all(done and w > 0 and h > 0 for done, w, h in images), images
        formulas = page.eval_on_selector_all(
            ".formula svg", "els => els.map(e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height,"
                            " e.querySelectorAll('path, use').length])")
        assert all(w > 0 and h > 0 and n > 0 for w, h, n in formulas), formulas
        if path != "reports.html":
            assert images and formulas and len(images) == len(formulas)  # every phenomenon: a figure, a formula
        assert page.locator("script").count() == 0
        assert page.evaluate("window.__pwned") is None
    finally:
        context.close()


def test_user_text_shows_as_text(browser, site):
    context, page, problems = _load(browser, site, "atlas-fast-20260101-000100-2/index.html")
    try:
        text = page.inner_text("body")
        assert EVIL in text and '"quoted"' in text  # shown literally, never run
        assert page.evaluate("window.__pwned") is None and problems == []
        label = page.get_attribute(".formula svg", "aria-label")
        assert label == f"x^{{2}} {EVIL}"
    finally:
        context.close()


def test_index_links_to_every_report(browser, site):
    context, page, problems = _load(browser, site, "index.html")
    try:
        links = page.eval_on_selector_all("table.reports a", "els => els.map(e => e.getAttribute('href'))")
        assert links == ["atlas-fast-20260101-000100-2/index.html", "atlas-20260101-000000-1/index.html"]
        page.click("table.reports a >> nth=1")
        page.wait_for_load_state("load")
        assert page.url == site + "atlas-20260101-000000-1/index.html"
        assert "beta" in page.inner_text("body") and problems == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def runs_site(tmp_path_factory):
    from lmech.report.runs_page import write_runs_page
    from lmech.report.serve import make_server
    from tests.report.test_runs_page import make_store

    tmp = tmp_path_factory.mktemp("runs-browser")
    write_runs_page(make_store(tmp / "store"), tmp / "out" / "runs")
    server = make_server(tmp / "out", "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _column(page, name: str) -> list[str]:
    index = page.eval_on_selector_all("#runs thead th", "els => els.map(e => e.textContent)").index(name)
    return page.eval_on_selector_all(f"#runs tbody tr td:nth-child({index + 1})", "els => els.map(e => e.textContent)")


def test_run_browser_sorts_filters_and_plots(browser, runs_site):
    from tests.report.test_runs_page import EVIL

    context, page, problems = _load(browser, runs_site, "runs/index.html")
    try:
        assert page.locator("#runs tbody tr").count() == 6
        page.click("#runs thead th[data-column='model_width']")
        assert _column(page, "model_width") == ["8", "8", "16", "16", "32", "32"]
        page.click("#runs thead th[data-column='model_width']")  # again: descending
        assert _column(page, "model_width") == ["32", "32", "16", "16", "8", "8"]
        page.fill("#filter", "optimizer_lr=0.1 model_width>10")
        assert sorted(_column(page, "model_width")) == ["16", "32"]
        page.fill("#filter", "")
        assert page.locator("#plot path").count() == 6  # nothing ticked: every shown run's curve
        page.check("#runs tbody tr >> nth=0 >> input")
        page.check("#runs tbody tr >> nth=1 >> input")
        assert page.locator("#plot path").count() == 2
        page.select_option("#color", "optimizer_lr")
        page.check("#logy")
        d = page.get_attribute("#plot path >> nth=0", "d")
        assert d.startswith("M") and d.count("L") == 10  # 11 logged steps
        start = d[1:].split("L")[0].split(",")  # the first point of the first curve, in svg pixels
        page.hover("#plot", position={"x": float(start[0]) + 2, "y": float(start[1]) + 1})
        assert "step 0:" in page.inner_text("#tip") and "optimizer_lr=" in page.inner_text("#tip")
        assert EVIL in page.inner_text("#runs")  # the evil sweep name and spec string, shown as text
        assert page.evaluate("window.__pwned") is None and problems == []
    finally:
        context.close()


def test_atlas_run_browser_loads_cleanly(browser, site):
    context, page, problems = _load(browser, site, "atlas-20260101-000000-1/runs/index.html")
    try:
        assert page.locator("#runs tbody tr").count() == 1 and problems == []
    finally:
        context.close()
