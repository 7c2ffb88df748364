"""The self-contained HTML reports: each phenomenon's claim, formula, figure and verdict.

Every atlas run keeps its own report, never overwritten by another atlas run:

    <out>/<report name>/index.html   one atlas run (verdicts.json, provenance.json, PNGs beside it)
    <out>/index.html                 the newest report, with the list of every report above it
    <out>/reports.html               the list of every report, newest first

The report name is the atlas store's directory name (a suffix -2, -3, ... when that folder is
already taken, e.g. by `--resume`). Figures are inlined as base64 PNG and formulas as SVG drawn by
matplotlib's mathtext, so the pages read offline (no script, no network). The verdicts are kept as
verdicts.json + PNG files, so `lmech report` can render the pages again without training.
"""

import base64
import datetime
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import sys
from pathlib import Path

import jinja2
from markupsafe import Markup

from lmech.phenomena.verdict import Comparison, Verdict

__all__ = ["write_report", "rerender_report", "save_verdicts", "load_verdicts", "make_provenance",
           "formula_svg", "list_reports", "verdict_history"]

_STYLE = """<style>
body{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;font-size:0.9em}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
section{border-top:2px solid #eee;margin-top:2em;padding-top:1em}code{background:#f6f8fa;padding:2px 4px}
img{max-width:100%}.formula svg{max-width:100%;height:auto;vertical-align:middle}
.prov{font-size:0.85em;color:#444;background:#f6f8fa;padding:0.5em 1em}.prov td{border:none;padding:1px 6px}
nav{font-size:0.9em;margin-bottom:1em}
</style>"""

_PROVENANCE = """<table class="prov">
<tr><th>date</th><td>{{ p.date or 'not recorded' }}</td></tr>
<tr><th>mode</th><td>{{ p.mode or 'not recorded' }}</td></tr>
<tr><th>lmech</th><td>{{ p.lmech or 'not recorded' }}</td></tr>
<tr><th>torch</th><td>{{ p.torch or 'not recorded' }}</td></tr>
<tr><th>python</th><td>{{ p.python or 'not recorded' }}</td></tr>
<tr><th>machine</th><td>{{ p.machine or 'not recorded' }}</td></tr>
<tr><th>store</th><td><code>{{ p.store or 'not recorded' }}</code></td></tr>
<tr><th>phenomena</th><td>{{ (p.phenomena or [])|join(', ') }}</td></tr>
</table>"""

_LISTING = """<table class="reports"><tr><th>report</th><th>date</th><th>mode</th><th>phenomena</th><th>passed</th><th>store</th></tr>
{% for r in reports %}<tr><td><a href="{{ r.href }}">{{ r.name }}</a></td><td>{{ r.date or '?' }}</td><td>{{ r.mode or '?' }}</td>
<td>{{ r.phenomena|join(', ') }}</td><td class="{{ 'pass' if r.passed == r.total else 'fail' }}">{{ r.passed }}/{{ r.total }}</td>
<td><code>{{ r.store or '?' }}</code></td></tr>
{% endfor %}</table>"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)

_PAGE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmech report {{ p.name }}</title>
""" + _STYLE + """</head><body>
<nav>{% if nav_up %}<a href="{{ nav_up }}">all reports</a>{% endif %}{% if here %} · this report is kept at <a href="{{ here }}">{{ here }}</a>{% endif %}{% if whole %} · <a href="{{ whole }}">the whole report</a>{% endif %}{% if runs_page %} · <a href="{{ runs_page }}">run browser</a>{% endif %}</nav>
{% if reports %}<h1>lmech reports</h1><p>{{ reports|length }} report(s) in this folder, newest first; the newest is shown below.</p>
""" + _LISTING + """{% endif %}
<h1>lmech report {{ p.name }}</h1>
""" + _PROVENANCE + """
<p>{{ passed }}/{{ verdicts|length }} phenomena agree with theory.</p>
<table class="scorecard"><tr><th>phenomenon</th><th>prediction</th><th>measurement</th><th>error</th><th>passes when</th><th>verdict</th><th>s</th></tr>
{% for v in verdicts %}<tr><td><a href="#{{ anchors[loop.index0] }}">{{ v.name }}</a></td><td>{{ v.comparison.prediction }}</td><td>{{ v.comparison.measurement }}</td>
<td>{{ number(v.comparison.error) }} <small>({{ v.comparison.metric }})</small></td><td>{{ v.comparison.passes_when }}</td>
<td class="{{ 'pass' if v.passed else 'fail' }}">{{ 'PASS' if v.passed else 'FAIL' }}</td><td>{{ '%.1f'|format(v.seconds) }}</td></tr>
{% endfor %}</table>
{% for v in verdicts %}<section id="{{ anchors[loop.index0] }}"><h2>{{ v.name }} <span class="{{ 'pass' if v.passed else 'fail' }}">{{ 'PASS' if v.passed else 'FAIL' }}</span></h2>
<p><b>Claim.</b> {{ v.claim }}</p>
<p><b>Formula.</b> <span class="formula">{{ formulas[loop.index0] }}</span><br><code>{{ v.formula }}</code></p>
<p><b>Source.</b> {{ v.source }}</p>
<p><b>Prediction.</b> {{ v.comparison.prediction }}<br><b>Measurement.</b> {{ v.comparison.measurement }}<br>
<b>{{ v.comparison.metric }}</b>: {{ number(v.comparison.error, 4) }} (tolerance {{ number(v.comparison.tolerance, 4) }})<br>
<b>Passes when</b> {{ v.comparison.passes_when }}</p>
{% if images[loop.index0] %}<img alt="{{ v.name }} figure" src="data:image/png;base64,{{ images[loop.index0] }}">{% endif %}
{% set ids = (p.runs or {}).get(v.name, []) %}<details><summary>runs ({{ ids|length }} spec hashes = run ids)</summary><code>{{ ids|join(' ') }}</code></details>
<details><summary>details</summary><pre>{{ details[loop.index0] }}</pre></details>
{% set past = (history or {}).get(v.name, []) %}{% if past %}<p><b>History of this verdict</b> across the atlas runs in this reports folder (newest first):</p>
<table class="history"><tr><th>report</th><th>date</th><th>mode</th><th>error</th><th>tolerance</th><th>verdict</th></tr>
{% for h in past %}<tr><td><a href="{{ history_prefix }}{{ h.folder }}/index.html#{{ h.anchor }}">{{ h.folder }}</a></td><td>{{ h.date or '?' }}</td><td>{{ h.mode or '?' }}</td>
<td>{{ number(h.error, 4) }}</td><td>{{ number(h.tolerance, 4) }}</td><td class="{{ 'pass' if h.passed else 'fail' }}">{{ 'PASS' if h.passed else 'FAIL' }}</td></tr>
{% endfor %}</table>{% endif %}
<p><a href="{{ anchors[loop.index0] }}.html">this phenomenon on its own page</a></p></section>
{% endfor %}</body></html>""")

_INDEX = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmech reports</title>
""" + _STYLE + """</head><body>
<nav><a href="index.html">newest report</a></nav>
<h1>lmech reports</h1><p>{{ reports|length }} report(s), newest first.</p>
""" + _LISTING + """
</body></html>""")


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}g}"


def _safe_name(name: str) -> str:
    """A file or folder name from any text: no separators, no dot-dot, nothing a shell or URL minds."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "report"
    return cleaned[:120]


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def make_provenance(verdicts: list[Verdict], store=None, fast: bool | None = None, name: str | None = None) -> dict:
    """Where and how these verdicts were made: date, mode, versions, machine, store, run ids per phenomenon."""
    import lmech

    if store is not None and not isinstance(store, (str, os.PathLike)):
        store = store.root  # a Store
    root = Path(store) if store is not None else None
    runs: dict[str, list[str]] = {}
    if root is not None and root.is_dir():
        from lmech.store import Store

        s = Store(root)
        names = {v.name for v in verdicts}
        for run_id in s.run_ids():
            sweep = s.summary(run_id).get("sweep")
            if sweep in names:
                runs.setdefault(sweep, []).append(run_id)
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "name": _safe_name(name or (root.name if root is not None else now.strftime("report-%Y%m%d-%H%M%S"))),
        "date": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "mode": None if fast is None else ("fast" if fast else "full"),
        "lmech": lmech.__version__, "torch": _version("torch"), "python": platform.python_version(),
        "machine": f"{platform.platform()} ({platform.machine()}, {os.cpu_count()} CPUs)",
        "store": str(root.resolve()) if root is not None else None,
        "phenomena": [v.name for v in verdicts], "runs": runs,
    }


def _math_text(formula: str) -> str:
    """The formula in mathtext: ^{..}, ^(..), ^token as superscripts and _token as subscripts; the
    rest is plain text ($ escaped), so any string is accepted."""
    out, i, n = [], 0, len(formula)
    while i < n:
        ch = formula[i]
        if ch in "^_" and i + 1 < n:
            rest = formula[i + 1:]
            group = None
            if rest[0] in "{(":
                close, depth = {"{": "}", "(": ")"}[rest[0]], 0
                for j, c in enumerate(rest):
                    depth += c == rest[0]
                    depth -= c == close
                    if depth == 0:
                        group, length = rest[1:j], j + 1
                        break
            else:
                pattern = r"[-−+]?\w+(/\w+)?" if ch == "^" else r"\w+(,\w+)*"
                m = re.match(pattern, rest)
                if m:
                    group, length = m.group(0), len(m.group(0))
            if group:
                body = re.sub(r"([\\{}$#%&~])", r"\\\1", group).replace(" ", r"\ ")
                out.append(f"${ch}{{\\mathrm{{{body}}}}}$")
                i += 1 + length
                continue
        out.append(r"\$" if ch == "$" else ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def formula_svg(formula: str) -> str:
    """An inline <svg> of the formula drawn by matplotlib's mathtext (glyphs as paths, no text,
    comments or metadata kept); the plain formula in a box if mathtext cannot draw it."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    for text in (_math_text(formula), formula.replace("$", r"\$")):
        buffer = io.BytesIO()
        try:
            mathtext.math_to_image(text, buffer, prop=FontProperties(size=13), format="svg")
        except Exception:  # noqa: BLE001 - a parse error of one's own formula: try plainer text
            continue
        svg = buffer.getvalue().decode("utf-8")
        svg = svg[svg.index("<svg"):]
        svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
        svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
        # ids are unique per formula, so several inline SVGs on one page never share one
        tag = "f" + hashlib.sha256(formula.encode()).hexdigest()[:8] + "-"
        svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{tag}{m.group(1)}"', svg)
        svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{tag}{m.group(1)}"', svg)
        svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{tag}{m.group(1)})", svg)
        return svg.replace("<svg ", '<svg role="img" ', 1)
    return ""


def _formula_markup(formula: str) -> Markup:
    svg = formula_svg(formula)
    if not svg:
        return Markup("")
    label = Markup(' aria-label="{}"').format(formula)
    return Markup(svg.replace('<svg role="img"', '<svg role="img"' + str(label), 1))  # svg: matplotlib's own


def _render_page(verdicts: list[Verdict], provenance: dict, reports: list[dict] | None = None,
                 nav_up: str | None = None, here: str | None = None, history: dict | None = None,
                 history_prefix: str = "", whole: str | None = None, runs_page: str | None = None) -> str:
    return _PAGE.render(
        verdicts=verdicts, passed=sum(v.passed for v in verdicts), p=provenance, reports=reports,
        nav_up=nav_up, here=here, number=_number, history=history, history_prefix=history_prefix,
        whole=whole, runs_page=runs_page,
        anchors=[_safe_name(v.name) for v in verdicts],
        formulas=[_formula_markup(v.formula) for v in verdicts],
        images=[base64.b64encode(v.figure_png).decode() if v.figure_png else None for v in verdicts],
        details=[json.dumps(v.comparison.details, indent=1, default=str) for v in verdicts],
    )


def _write_folder(verdicts: list[Verdict], folder: Path, provenance: dict, **page) -> Path:
    """index.html with every verdict, and <phenomenon>.html with one each (same history and links)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_verdicts(verdicts, folder)
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=1))
    if (folder / "runs" / "index.html").is_file():
        page.setdefault("runs_page", "runs/index.html")
    path = folder / "index.html"
    path.write_text(_render_page(verdicts, provenance, **page))
    single = {k: v for k, v in page.items() if k in ("history", "history_prefix", "runs_page")}
    for v in verdicts:
        (folder / f"{_safe_name(v.name)}.html").write_text(
            _render_page([v], provenance, whole="index.html", **single))
    return path


def verdict_history(out_dir: str | Path) -> dict[str, list[dict]]:
    """{phenomenon: [{folder, anchor, date, mode, error, tolerance, passed}, ...] newest first} over
    every report folder in out_dir (as `list_reports` finds them)."""
    out = Path(out_dir)
    history: dict[str, list[dict]] = {}
    for report in list_reports(out):
        try:
            records = json.loads((out / report["name"] / "verdicts.json").read_text())
        except (OSError, ValueError):
            continue
        for r in records if isinstance(records, list) else []:
            if not isinstance(r, dict) or not isinstance(r.get("name"), str):
                continue
            number = lambda x: float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None  # noqa: E731
            history.setdefault(r["name"], []).append({
                "folder": report["name"], "anchor": _safe_name(r["name"]), "date": report["date"],
                "mode": report["mode"], "error": number(r.get("error")), "tolerance": number(r.get("tolerance")),
                "passed": bool(r.get("passed"))})
    return history


def list_reports(out_dir: str | Path) -> list[dict]:
    """Every report folder below out_dir (one with verdicts.json and provenance.json), newest first."""
    out = Path(out_dir)
    rows = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []:
        try:
            provenance = json.loads((folder / "provenance.json").read_text())
            records = json.loads((folder / "verdicts.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(provenance, dict) or not isinstance(records, list):
            continue
        rows.append({"name": folder.name, "href": f"{folder.name}/index.html", "date": provenance.get("date"),
                     "mode": provenance.get("mode"), "store": provenance.get("store"),
                     "phenomena": [str(r.get("name")) for r in records if isinstance(r, dict)],
                     "passed": sum(bool(r.get("passed")) for r in records if isinstance(r, dict)),
                     "total": len(records)})
    return sorted(rows, key=lambda r: (str(r["date"] or ""), r["name"]), reverse=True)


def _write_listing(out: Path) -> list[dict]:
    reports = list_reports(out)
    (out / "reports.html").write_text(_INDEX.render(reports=reports))
    return reports


def write_report(verdicts: list[Verdict], out_dir: str | Path, store=None, fast: bool | None = None,
                 provenance: dict | None = None, runs_page: bool = True) -> Path:
    """Keep this atlas run's report in its own folder under out_dir (never overwriting another's),
    show it as out_dir/index.html with the list of every report, and return that page's path.

    store: the atlas store (a path or Store): names the folder and gives the run ids; fast: the mode;
    runs_page: also write the store's run browser to <folder>/runs/ (`runs_page.write_runs_page`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = dict(provenance or make_provenance(verdicts, store=store, fast=fast))
    base = name = _safe_name(provenance.get("name") or "report")
    suffix = 2
    while (out / name).exists():  # another atlas run's report (or --resume of the same store): keep it
        name, suffix = f"{base}-{suffix}", suffix + 1
    provenance["name"] = name
    if runs_page and provenance.get("store") and Path(provenance["store"]).is_dir():
        from lmech.report.runs_page import write_runs_page
        from lmech.store import Store

        write_runs_page(Store(provenance["store"]), out / name / "runs", title=name,
                        nav='<a href="../index.html">the report</a>')
    _write_folder(verdicts, out / name, provenance, nav_up="../reports.html")  # its record first, then history
    reports = _write_listing(out)
    history = verdict_history(out)
    _write_folder(verdicts, out / name, provenance, nav_up="../reports.html", history=history, history_prefix="../")
    return _write_folder(verdicts, out, provenance, reports=reports, nav_up="reports.html",
                         here=f"{name}/index.html", history=history, runs_page=f"{name}/runs/index.html"
                         if (out / name / "runs" / "index.html").is_file() else None)


def rerender_report(out_dir: str | Path) -> tuple[list[Verdict], Path]:
    """Render out_dir/index.html again from the verdicts saved there (and the list of reports, when
    out_dir holds report folders or is one of them); returns (verdicts, page)."""
    out = Path(out_dir)
    verdicts = load_verdicts(out)
    try:
        provenance = json.loads((out / "provenance.json").read_text())
    except (OSError, ValueError):
        provenance = {"name": out.name, "phenomena": [v.name for v in verdicts]}  # a report from before provenance
    if list_reports(out):
        reports = _write_listing(out)
        name = provenance.get("name")
        here = f"{name}/index.html" if name and (out / str(name) / "index.html").is_file() else None
        page = _write_folder(verdicts, out, provenance, reports=reports, nav_up="reports.html", here=here,
                             history=verdict_history(out))
    else:
        parent_lists = (out.parent / "reports.html").is_file()
        page = _write_folder(verdicts, out, provenance, nav_up="../reports.html" if parent_lists else None,
                             history=verdict_history(out.parent) if parent_lists else None, history_prefix="../")
        if parent_lists:
            _write_listing(out.parent)
    return verdicts, page


def save_verdicts(verdicts: list[Verdict], out: Path) -> None:
    for v in verdicts:
        if v.figure_png:
            (out / f"{_safe_name(v.name)}.png").write_bytes(v.figure_png)
    (out / "verdicts.json").write_text(json.dumps([v.to_json() for v in verdicts], indent=1))


def load_verdicts(out_dir: str | Path) -> list[Verdict]:
    """Verdicts saved by write_report (figures re-read from their PNG files)."""
    out = Path(out_dir)
    records = json.loads((out / "verdicts.json").read_text())
    verdicts = []
    for r in records:
        png = out / f"{_safe_name(r['name'])}.png"
        comparison = Comparison(r["prediction"], r["measurement"], r["metric"],
                                float("nan") if r["error"] is None else r["error"],
                                r["tolerance"], r["passed"], r["details"], r.get("direction"))
        verdicts.append(Verdict(r["name"], r["claim"], r["formula"], r["source"], comparison,
                                r["seconds"], png.read_bytes() if png.is_file() else None))
    return verdicts
