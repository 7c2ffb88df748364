"""The run browser: one offline page with a store's runs table (sort, filter) and interactive curves.

One job: gather a store's `runs` table and metric series (through `Store.query`, so nothing is
read that the store has not verified) and write `index.html` + `runs.js` into a folder.

The page needs no network: the data are inlined as JSON in a `<script type="application/json">`
element (with `<`, `>` and `&` escaped as \\u003c, \\u003e, \\u0026 so no run name or spec string can
close the element), and the script is the static file `runs.js` next to it (the server's CSP
allows scripts from the page's own origin only, no inline script). The script builds the table
with textContent (never innerHTML), so user text shows as text.

Size: every series is thinned to at most `max_points` steps (evenly in index, always keeping the
first and last), and at most `max_runs` runs are included (the newest first); the page says when
it left runs out.
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources
from pathlib import Path

__all__ = ["runs_page_data", "write_runs_page"]


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _thin(points: list[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    if len(points) <= max_points:
        return points
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def runs_page_data(store, max_runs: int = 2000, max_points: int = 200) -> dict:
    """{"columns": [...], "rows": [[...]], "series": {run_id: {metric: [[step, value], ...]}},
    "omitted": number of runs left out} for the store's complete runs."""
    order = f"order by created desc nulls last, run_id limit {int(max_runs)}"
    described, rows, total, metric_rows = store.queries([  # one read of the store for the whole page
        "describe runs", f"select * from runs {order}", "select count(*) from runs",
        f"select m.run_id, m.name, m.step, m.value from metrics m join (select run_id from runs {order}) r "
        "using (run_id) order by m.run_id, m.name, m.step"])
    columns = [row[0] for row in described]
    kept = [str(row[0]) for row in rows]
    series: dict[str, dict[str, list]] = {run_id: {} for run_id in kept}
    for run_id, name, step, value in metric_rows:
        series[str(run_id)].setdefault(str(name), []).append((int(step), _clean(float(value))))
    for run_id, metrics in series.items():
        for name, points in metrics.items():
            metrics[name] = [list(p) for p in _thin(points, max_points)]
    return {"columns": columns, "rows": [[_clean(v) for v in row] for row in rows], "series": series,
            "omitted": int(total[0][0]) - len(kept)}


def _script_json(data: dict) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmech runs: {title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse;font-size:0.85em}}td,th{{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}}
th{{cursor:pointer;background:#f6f8fa;position:sticky;top:0}}th.sorted-asc::after{{content:" \\25B2"}}th.sorted-desc::after{{content:" \\25BC"}}
#wrap{{max-height:45vh;overflow:auto;border:1px solid #ddd}}#controls{{margin:0.8em 0}}#controls label{{margin-right:1em}}
#plot{{border:1px solid #ddd;background:#fff}}#tip{{position:fixed;pointer-events:none;background:#222;color:#fff;padding:2px 6px;font-size:0.8em;display:none}}
.prov{{font-size:0.85em;color:#444}}
</style></head><body>
<nav>{nav}</nav>
<h1>Runs of <code>{title}</code></h1>
<p class="prov">store <code>{store}</code> · {count} run(s){omitted}</p>
<div id="controls">
<label>filter <input id="filter" size="40" placeholder="text, or field=value, field&gt;value"></label>
<span id="shown"></span>
</div>
<div id="wrap"><table id="runs"><thead></thead><tbody></tbody></table></div>
<div id="controls2" style="margin-top:1em">
<label>metric <select id="metric"></select></label>
<label>colour by <select id="color"></select></label>
<label><input type="checkbox" id="logx"> log x</label>
<label><input type="checkbox" id="logy"> log y</label>
<span>curves of the ticked runs (none ticked: the first 20 shown)</span>
</div>
<svg id="plot" width="900" height="420" role="img" aria-label="metric vs step"></svg>
<div id="tip"></div>
<script type="application/json" id="data">{data}</script>
<script src="runs.js"></script>
</body></html>
"""


def write_runs_page(store, folder: str | Path, title: str | None = None, nav: str = "",
                    max_runs: int = 2000, max_points: int = 200) -> Path:
    """Write folder/index.html and folder/runs.js for the store's runs; return the page's path.

    nav: trusted HTML for the navigation line (links lmech itself writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = runs_page_data(store, max_runs, max_points)
    count = len(data["rows"])
    omitted = f" · {data['omitted']} older run(s) left out (max {max_runs})" if data["omitted"] else ""
    page = _PAGE.format(title=html.escape(title or Path(store.root).name), store=html.escape(str(store.root)),
                        count=count, omitted=omitted, nav=nav, data=_script_json(data))
    (folder / "runs.js").write_text(resources.files("lmech.report").joinpath("static/runs.js").read_text())
    path = folder / "index.html"
    path.write_text(page)
    return path
