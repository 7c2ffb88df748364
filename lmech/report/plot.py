"""Figures of a store's runs: a metric vs step, or its final value vs a swept field.

Ignores what the runs mean: runs are grouped by one column of the store's `runs` table
(`Store.query`), and every run of a group counts as a repeat (a seed). Narrow the runs
with `where` (SQL over the `runs` table) when a group would mix other settings.
"""

import math

import numpy as np
from matplotlib.figure import Figure

from lmech.errors import InputError

__all__ = ["plot_runs", "run_fields", "metric_names"]

_BANDS = {"minmax": "min-max over runs", "se": "mean +- 1 s.e. over runs"}


def run_fields(store) -> dict[str, str]:
    """{column: DuckDB type} of the store's `runs` table (run_id, sweep, spec fields, final_* ...)."""
    return {row[0]: row[1] for row in store.query("describe runs")}


def metric_names(store) -> list[str]:
    """Names in the store's `metrics` table, sorted."""
    return [row[0] for row in store.query("select distinct name from metrics order by name")]


def plot_runs(store, metric: str, *, color_by: str | None = None, x: str = "step", where: str | None = None,
              logx: bool | None = None, logy: bool | None = None, band: str = "minmax") -> Figure:
    """One figure of `metric` over the store's complete runs, one line per value of `color_by`.

    x="step": the metric vs step; at each step the line is the mean over the group's runs
    logging that step. x=<runs field> (e.g. "optimizer_lr"): each run's last value of the
    metric (at its largest step) vs that field; the line is the mean over the group's
    runs at each field value, drawn with markers.

    Args:
        store: an lmech Store.
        metric: a name in the `metrics` table, e.g. "loss/train".
        color_by: a `runs` column; None puts every selected run in one group.
        x: "step" or a numeric `runs` column.
        where: a SQL condition over the `runs` table, e.g. "model_width = 4".
        logx, logy: None chooses log when every plotted value is positive and they span more
            than a factor of 10.
        band: "minmax" (min to max over the group's runs) or "se" (mean +- 1 standard error,
            sample standard deviation / sqrt(n); zero width for one run).

    Returns: a matplotlib Figure (not registered with pyplot; constrained layout, so the
    title and labels are not clipped). Mean lines carry the group's label; bands are
    PolyCollections.

    Failure modes: an unknown metric, field or band, a non-numeric x field, an invalid
    `where` or no matching runs raise InputError with one line. Non-finite values show as
    gaps in the mean line.
    """
    if band not in _BANDS:
        raise InputError(f"unknown band '{band}'; choose one of {', '.join(_BANDS)}")
    fields = run_fields(store)
    names = metric_names(store)
    if metric not in names:
        raise InputError(f"unknown metric '{metric}'; the store has: {', '.join(names) or 'no metrics'}")
    for role, field in (("color_by", color_by), ("x", None if x == "step" else x)):
        if field is not None and field not in fields:
            raise InputError(f"unknown {role} field '{field}'; runs fields: {', '.join(sorted(fields))}")
    if x != "step" and fields[x] not in ("DOUBLE", "BIGINT", "INTEGER", "FLOAT"):
        raise InputError(f"x field '{x}' is not numeric (it holds {fields[x]}); choose a numeric runs field")
    group = f'r."{color_by}"' if color_by else "NULL"
    condition = f"m.name = '{metric.replace(chr(39), chr(39) * 2)}'" + (f" and ({where})" if where else "")
    if x == "step":
        sql = (f"select {group}, m.run_id, m.step, m.value from metrics m join runs r using (run_id) "
               f"where {condition} order by m.run_id, m.step")
    else:
        sql = (f"select {group}, m.run_id, r.\"{x}\", arg_max(m.value, m.step) from metrics m join runs r "
               f"using (run_id) where {condition} and r.\"{x}\" is not null group by all")
    try:
        rows = store.query(sql)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - DuckDB's errors for a bad `where`
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"invalid where {where!r}: {first}") from None
    if not rows:
        raise InputError(f"no runs have metric '{metric}'" + (f" where {where}" if where else ""))
    return _figure(rows, metric, color_by, x, where, logx, logy, band)


def _aggregate(values: list[float], band: str) -> tuple[float, float, float]:
    """(mean, low, high) of one point's values over runs."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(v))
    if band == "minmax":
        return mean, float(np.min(v)), float(np.max(v))
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return mean, mean - se, mean + se


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def _label(color_by: str | None, value, n_runs: int) -> str:
    runs = f"{n_runs} run{'s' if n_runs != 1 else ''}"
    if color_by is None:
        return f"all ({runs})"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{color_by}={shown} ({runs})"


def _auto_log(flag: bool | None, values: list[float]) -> bool:
    if flag is not None:
        return flag
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) > 10 * min(finite)


def _figure(rows, metric, color_by, x, where, logx, logy, band) -> Figure:
    groups: dict = {}
    for key, run_id, position, value in rows:
        runs = groups.setdefault(key, {})
        runs.setdefault(run_id, {})[position] = float("nan") if value is None else float(value)
    keys = sorted(groups, key=_sort_key)
    cmap = _colors(len(keys))
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    xs_all, ys_all = [], []
    for color, key in zip(cmap, keys):
        per_run = groups[key]
        points: dict[float, list[float]] = {}
        for series in per_run.values():
            for position, value in series.items():
                points.setdefault(float(position), []).append(value)
        xs = sorted(points)
        stats = [_aggregate(points[p], band) for p in xs]
        means, lows, highs = ([s[i] for s in stats] for i in range(3))
        style = {"marker": "o"} if x != "step" else {}
        axes.plot(xs, means, color=color, label=_label(color_by, key, len(per_run)), **style)
        if any(h != lo for lo, h in zip(lows, highs)):
            axes.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)
        xs_all += xs
        ys_all += [v for values in points.values() for v in values]
    if _auto_log(logx, xs_all):
        axes.set_xscale("log")
    if _auto_log(logy, ys_all):
        axes.set_yscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(metric if x == "step" else f"{metric} (last value per run)")
    title = f"{metric} vs {x}" + (f" where {where}" if where else "")
    axes.set_title(f"{title}\nline: mean over runs; band: {_BANDS[band]}", fontsize=10)
    axes.legend(fontsize=8, title=None if len(keys) <= 12 else f"{len(keys)} groups")
    axes.grid(True, alpha=0.3)
    return figure


def _colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]
