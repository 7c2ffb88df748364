"""The self-contained HTML report: each phenomenon's claim, formula, figure and verdict.

Figures are inlined as base64 PNG, so the page reads offline. The verdicts are
also kept as verdicts.json + PNG files beside it, so `lmech report` can render
the page again without training.
"""

import base64
import json
from pathlib import Path

import jinja2

from lmech.phenomena.verdict import Comparison, Verdict

__all__ = ["write_report", "save_verdicts", "load_verdicts"]

_TEMPLATE = jinja2.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmech report</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;font-size:0.9em}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
section{border-top:2px solid #eee;margin-top:2em;padding-top:1em}code{background:#f6f8fa;padding:2px 4px}
img{max-width:100%}
</style></head><body>
<h1>lmech report</h1>
<p>{{ passed }}/{{ verdicts|length }} phenomena agree with theory.</p>
<table><tr><th>phenomenon</th><th>prediction</th><th>measurement</th><th>error</th><th>tolerance</th><th>verdict</th><th>s</th></tr>
{% for v in verdicts %}<tr><td><a href="#{{ v.name }}">{{ v.name }}</a></td><td>{{ v.comparison.prediction }}</td><td>{{ v.comparison.measurement }}</td>
<td>{{ '%.3g'|format(v.comparison.error) }} <small>({{ v.comparison.metric }})</small></td><td>{{ '%.3g'|format(v.comparison.tolerance) }}</td>
<td class="{{ 'pass' if v.passed else 'fail' }}">{{ 'PASS' if v.passed else 'FAIL' }}</td><td>{{ '%.1f'|format(v.seconds) }}</td></tr>
{% endfor %}</table>
{% for v in verdicts %}<section id="{{ v.name }}"><h2>{{ v.name }} <span class="{{ 'pass' if v.passed else 'fail' }}">{{ 'PASS' if v.passed else 'FAIL' }}</span></h2>
<p><b>Claim.</b> {{ v.claim }}</p><p><b>Formula.</b> <code>{{ v.formula }}</code></p><p><b>Source.</b> {{ v.source }}</p>
<p><b>Prediction.</b> {{ v.comparison.prediction }}<br><b>Measurement.</b> {{ v.comparison.measurement }}<br>
<b>{{ v.comparison.metric }}</b>: {{ '%.4g'|format(v.comparison.error) }} (tolerance {{ '%.4g'|format(v.comparison.tolerance) }})</p>
{% if v.figure_png %}<img alt="{{ v.name }} figure" src="data:image/png;base64,{{ images[v.name] }}">{% endif %}
<details><summary>details</summary><pre>{{ details[v.name] }}</pre></details></section>
{% endfor %}</body></html>""", autoescape=True)


def write_report(verdicts: list[Verdict], out_dir: str | Path) -> Path:
    """Write index.html (self-contained) and the verdict files into out_dir; return the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_verdicts(verdicts, out)
    page = _TEMPLATE.render(
        verdicts=verdicts, passed=sum(v.passed for v in verdicts),
        images={v.name: base64.b64encode(v.figure_png).decode() for v in verdicts if v.figure_png},
        details={v.name: json.dumps(v.comparison.details, indent=1) for v in verdicts},
    )
    path = out / "index.html"
    path.write_text(page)
    return path


def save_verdicts(verdicts: list[Verdict], out: Path) -> None:
    for v in verdicts:
        if v.figure_png:
            (out / f"{v.name}.png").write_bytes(v.figure_png)
    (out / "verdicts.json").write_text(json.dumps([v.to_json() for v in verdicts], indent=1))


def load_verdicts(out_dir: str | Path) -> list[Verdict]:
    """Verdicts saved by write_report (figures re-read from their PNG files)."""
    out = Path(out_dir)
    records = json.loads((out / "verdicts.json").read_text())
    verdicts = []
    for r in records:
        png = out / f"{r['name']}.png"
        comparison = Comparison(r["prediction"], r["measurement"], r["metric"],
                                float("nan") if r["error"] is None else r["error"],
                                r["tolerance"], r["passed"], r["details"])
        verdicts.append(Verdict(r["name"], r["claim"], r["formula"], r["source"], comparison,
                                r["seconds"], png.read_bytes() if png.is_file() else None))
    return verdicts
