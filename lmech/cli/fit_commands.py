"""The logic behind `lmech fit scaling` and `lmech fit curve`: CSV in, JSON-ready dict and PNG out.

One job: read a user's CSV, validate it with one-line `InputError`s (file,
column, row), call the theory fitters, and shape the result for printing or
plotting.  It ignores argument parsing (the CLI wires these functions into
typer) and does no fitting of its own.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lmech.errors import InputError
from lmech.theory.coupled_scaling_law import CoupledScalingLawFit, fit_coupled_scaling_law
from lmech.theory.scaling_law import ScalingLawFit, compute_optimal_allocation, fit_power_law, fit_scaling_law

__all__ = ["curve_figure", "fit_curve_csv", "fit_scaling_csv", "print_curve_fit", "print_scaling_fit", "read_columns",
           "scaling_figure"]


MAX_CSV_BYTES = 64 << 20  # 64 MiB
MAX_ROWS = 1_000_000
MAX_NUMBER_CHARS = 400  # a cell of a numeric column (a double written out in full has at most 309 digits)


def read_columns(path: str | Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the named columns of a CSV with a header row as positive float64 arrays.

    Raises ``InputError`` (one line) for a missing, empty, oversized (``MAX_CSV_BYTES``, ``MAX_ROWS``)
    or non-UTF-8 file, a missing or repeated column (listing the available ones), a row whose
    field count differs from the header's (naming the line: ``642,1,5`` under ``step,loss`` is a
    decimal comma, never the loss 1), or a cell that is empty, longer than ``MAX_NUMBER_CHARS``,
    non-numeric, non-finite or ``<= 0`` (naming column and data row, 1-based). Blank lines are skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p}")
    if p.stat().st_size > MAX_CSV_BYTES:
        raise InputError(f"{p} is larger than the limit of {MAX_CSV_BYTES >> 20} MiB for a CSV")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            return _read_rows(p, reader, columns)
        except UnicodeDecodeError:
            raise InputError(f"{p} is not UTF-8 text (near line {reader.line_num + 1})") from None
        except csv.Error as error:  # a field past csv's size limit, a stray quote
            raise InputError(f"{p} line {reader.line_num}: {str(error)[:100]}") from None


def _read_rows(p: Path, reader, columns: Sequence[str]) -> dict[str, np.ndarray]:
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise InputError(f"{p} is empty (expected a header row)")
    shown = ", ".join(h[:40] for h in header[:20]) + (", ..." if len(header) > 20 else "")
    for c in columns:
        if c not in header:
            raise InputError(f"column '{c}' not found in {p}; available: {shown}")
        if header.count(c) > 1:
            raise InputError(f"column '{c}' appears {header.count(c)} times in the header of {p}")
    where = {c: header.index(c) for c in columns}
    out: dict[str, list[float]] = {c: [] for c in columns}
    i = 0
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != len(header):
            raise InputError(f"{p} line {reader.line_num}: {len(row)} fields, the header has {len(header)} "
                             "(a decimal comma? write 1.5, and quote text that holds commas)")
        i += 1
        if i > MAX_ROWS:
            raise InputError(f"{p} has more than {MAX_ROWS} data rows (the limit); thin it first")
        for c in columns:
            raw = row[where[c]].strip()
            if len(raw) > MAX_NUMBER_CHARS:
                raise InputError(f"column '{c}' row {i}: a cell of {len(raw)} characters is not a number")
            try:
                v = float(raw)
            except ValueError:
                raise InputError(f"column '{c}' row {i}: {raw!r} is not a number") from None
            if not math.isfinite(v) or v <= 0:
                raise InputError(f"column '{c}' row {i}: value {raw} must be finite and > 0")
            out[c].append(v)
    return {c: np.asarray(v, dtype=np.float64) for c, v in out.items()}


def _check_finite(fit, names: Sequence[str], bootstrap: int) -> None:
    """Refuse a fit whose estimates or bootstrap intervals are not finite numbers (one line, exit 2)."""
    bad = [k for k in names if not math.isfinite(getattr(fit, k))]
    if bad:
        raise InputError(f"the fit's {', '.join(bad)} came out non-finite: the data cannot identify the law")
    if bootstrap > 0:
        bad = [k for k in names if k not in fit.intervals or not all(map(math.isfinite, fit.intervals[k]))]
        if bad:
            raise InputError(f"the bootstrap intervals of {', '.join(bad)} are not finite numbers: the resamples "
                             "cannot identify the law (too few distinct points?)")


def _interval_dict(intervals: dict[str, tuple[float, float]]) -> dict[str, list[float]]:
    return {k: [float(lo), float(hi)] for k, (lo, hi) in intervals.items()}


def _allocation_rows(fit, budgets: Sequence[float]) -> list[dict[str, float | None]]:
    if not budgets:
        return []
    for b in budgets:
        if not (math.isfinite(b) and b > 0):
            raise InputError(f"budget {b} must be finite and > 0 (FLOPs)")
    alloc = _allocate(fit, np.asarray(budgets, dtype=np.float64))
    rows = []
    for i, c in enumerate(alloc.compute):
        def bound(arr, j):
            return None if arr is None else float(arr[i, j])

        if not all(math.isfinite(float(v)) for v in (alloc.n_opt[i], alloc.d_opt[i], alloc.loss[i])):
            raise InputError(f"the allocation of budget {float(c):g} is not finite (the fitted law overflows there)")
        rows.append({"budget": float(c), "N_opt": float(alloc.n_opt[i]), "N_lo": bound(alloc.n_interval, 0),
                     "N_hi": bound(alloc.n_interval, 1), "D_opt": float(alloc.d_opt[i]),
                     "D_lo": bound(alloc.d_interval, 0), "D_hi": bound(alloc.d_interval, 1),
                     "loss": float(alloc.loss[i])})
    return rows


LAWS = {"additive": ("E", "A", "B", "alpha", "beta"), "coupled": ("E", "A", "B", "alpha", "beta", "p")}
LAW_FORMULAS = {"additive": "L = E + A/N^alpha + B/D^beta",
                "coupled": "L = E + ((A/N^alpha)^(1/p) + (B/D^beta)^(1/p))^p"}


def _allocate(fit, budgets: np.ndarray):
    return fit.allocate(budgets) if isinstance(fit, CoupledScalingLawFit) else compute_optimal_allocation(fit, budgets)


def law_from_result(result: dict) -> ScalingLawFit | CoupledScalingLawFit:
    """The point-estimate law of a ``fit_scaling_csv`` result (no bootstrap), for curves and frontiers."""
    names = LAWS[result["law"]]
    cls = CoupledScalingLawFit if result["law"] == "coupled" else ScalingLawFit
    return cls(**{k: result[k] for k in names}, objective=0.0, n_points=result["n_points"], level=result["level"])


def fit_scaling_csv(
    path: str | Path,
    n_col: str = "N",
    d_col: str = "D",
    loss_col: str = "loss",
    budgets: Sequence[float] = (),
    *,
    law: str = "additive",
    bootstrap: int = 100,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Fit ``L = E + A/N^alpha + B/D^beta`` (law "additive", Chinchilla) or the coupled law
    ``E + ((A/N^alpha)^(1/p) + (B/D^beta)^(1/p))^p`` (law "coupled") to a CSV and allocate compute budgets.

    Returns a JSON-ready dict: ``law``, ``E, A, B, alpha, beta`` (floats; and ``p`` for "coupled"),
    ``intervals`` ``{name: [lo, hi]}`` (bootstrap, at ``level``),
    ``allocation`` (one ``{budget, N_opt, N_lo, N_hi, D_opt, D_lo, D_hi, loss}``
    per budget in FLOPs, under ``C = 6 N D``), ``n_points``, ``level``.

    Raises ``InputError`` for bad files/columns/values and
    ``NotIdentifiableError`` (an ``InputError``) when the data cannot
    identify the law (see ``lmech.theory.scaling_law.fit_scaling_law``).
    """
    if law not in LAWS:
        raise InputError(f"unknown law '{law}'; known: {', '.join(LAWS)}")
    cols = read_columns(path, [n_col, d_col, loss_col])
    fitter = fit_coupled_scaling_law if law == "coupled" else fit_scaling_law
    fit = fitter(cols[n_col], cols[d_col], cols[loss_col], bootstrap=bootstrap, level=level, seed=seed)
    _check_finite(fit, LAWS[law], bootstrap)
    return {"law": law, **{k: getattr(fit, k) for k in LAWS[law]},
            "intervals": _interval_dict(fit.intervals), "allocation": _allocation_rows(fit, list(budgets)),
            "n_points": fit.n_points, "level": level}


def fit_curve_csv(
    path: str | Path,
    x: str,
    y: str,
    at: Sequence[float] | float | int = (),
    *,
    bootstrap: int = 100,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Fit ``L(x) = E + A x^-alpha`` to two CSV columns and forecast at ``at``.

    Returns a JSON-ready dict: ``E, A, alpha``, ``intervals``,
    ``forecast`` (one ``{x, loss, lo, hi}`` per point of ``at``; ``lo``/``hi``
    None without bootstrap), ``n_points``, ``level``.

    Raises as ``fit_scaling_csv``.
    """
    cols = read_columns(path, [x, y])
    fit = fit_power_law(cols[x], cols[y], bootstrap=bootstrap, level=level, seed=seed)
    _check_finite(fit, ("E", "A", "alpha"), bootstrap)
    points = [float(a) for a in np.atleast_1d(np.asarray(at, dtype=np.float64))]
    forecast = []
    if points:
        fc = fit.forecast(points)
        for i, xv in enumerate(points):
            lo, hi = float(fc.lo[i]), float(fc.hi[i])
            if not math.isfinite(float(fc.point[i])) or math.isinf(lo) or math.isinf(hi):
                raise InputError(f"the forecast at {xv:g} is not a finite number (the fitted law overflows there)")
            forecast.append({"x": xv, "loss": float(fc.point[i]), "lo": None if math.isnan(lo) else lo,
                             "hi": None if math.isnan(hi) else hi})
    return {"E": fit.E, "A": fit.A, "alpha": fit.alpha, "intervals": _interval_dict(fit.intervals),
            "forecast": forecast, "n_points": fit.n_points, "level": level}


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=110)
    return out


def scaling_figure(
    path: str | Path,
    out: str | Path,
    result: dict,
    n_col: str = "N",
    d_col: str = "D",
    loss_col: str = "loss",
) -> Path:
    """PNG of loss vs compute ``6 N D``: the runs (coloured by N), the fitted compute-optimal frontier
    extended to the largest budget in ``result["allocation"]``, and the budgets' predicted loss with
    their N intervals. ``result`` is the dict from ``fit_scaling_csv``. Returns the PNG path."""
    cols = read_columns(path, [n_col, d_col, loss_col])
    compute = 6.0 * cols[n_col] * cols[d_col]
    budgets = [row["budget"] for row in result["allocation"]]
    c_grid = np.logspace(np.log10(compute.min()), np.log10(max([compute.max(), *budgets])), 200)
    frontier = _allocate(law_from_result(result), c_grid)
    e = result["E"]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    sc = ax.scatter(compute, cols[loss_col], c=np.log10(cols[n_col]), s=14, cmap="viridis", label="runs")
    fig.colorbar(sc, ax=ax, label=f"log10 {n_col}")
    ax.plot(c_grid, frontier.loss, "k-", lw=1.5, label="fit: compute-optimal frontier")
    for row in result["allocation"]:
        ax.plot([row["budget"]], [row["loss"]], "r*", ms=11)
        ax.annotate(f"N={row['N_opt']:.2g}", (row["budget"], row["loss"]), textcoords="offset points",
                    xytext=(4, 6), fontsize=8)
    ax.axhline(e, color="grey", ls=":", lw=1, label=f"E = {e:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("compute C = 6 N D (FLOPs)")
    ax.set_ylabel(loss_col)
    ax.set_title(LAW_FORMULAS[result["law"]] + f"  (alpha {result['alpha']:.2f}, beta {result['beta']:.2f})")
    ax.legend(fontsize=8)
    return _save(fig, out)


def curve_figure(path: str | Path, out: str | Path, result: dict, x: str, y: str) -> Path:
    """PNG of the curve data, the fitted ``E + A x^-alpha`` extended to the forecast points, and the
    forecasts with their bootstrap intervals. ``result`` is the dict from ``fit_curve_csv``."""
    cols = read_columns(path, [x, y])
    far = [row["x"] for row in result["forecast"]]
    grid = np.logspace(np.log10(cols[x].min()), np.log10(max([cols[x].max(), *far])), 200)
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    ax.plot(cols[x], cols[y], "o", ms=3, label="data")
    ax.plot(grid, result["E"] + result["A"] * grid ** (-result["alpha"]), "k-", lw=1.5,
            label=f"fit: {result['E']:.3g} + {result['A']:.3g} x^-{result['alpha']:.3f}")
    for row in result["forecast"]:
        if row["lo"] is not None:
            ax.errorbar([row["x"]], [row["loss"]], yerr=[[row["loss"] - row["lo"]], [row["hi"] - row["loss"]]],
                        fmt="r*", ms=10, capsize=3)
        else:
            ax.plot([row["x"]], [row["loss"]], "r*", ms=10)
    ax.axhline(result["E"], color="grey", ls=":", lw=1, label="E (asymptote)")
    ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    return _save(fig, out)


def print_scaling_fit(result: dict, console) -> None:
    """The parameters with intervals and the allocation table of `fit_scaling_csv`, as rich tables."""
    from rich.table import Table

    table = Table(title=f"{LAW_FORMULAS[result['law']]}  ({result['n_points']} points, "
                        f"{int(100 * result['level'])}% bootstrap intervals)")
    for column in ("parameter", "estimate", "interval"):
        table.add_column(column)
    for name in LAWS[result["law"]]:
        lo, hi = result["intervals"][name]
        table.add_row(name, f"{result[name]:.4g}", f"[{lo:.4g}, {hi:.4g}]")
    console.print(table)
    if result["allocation"]:
        allocation = Table(title="compute-optimal allocation (C = 6 N D)")
        for column in ("budget C", "N_opt", "N interval", "D_opt", "D interval", "predicted loss"):
            allocation.add_column(column)
        for row in result["allocation"]:
            allocation.add_row(f"{row['budget']:.3g}", f"{row['N_opt']:.3g}", f"[{row['N_lo']:.3g}, {row['N_hi']:.3g}]",
                               f"{row['D_opt']:.3g}", f"[{row['D_lo']:.3g}, {row['D_hi']:.3g}]", f"{row['loss']:.4g}")
        console.print(allocation)
    console.print(f"figure: {result['figure']}")


def print_curve_fit(result: dict, console, x: str, y: str) -> None:
    """The fitted curve with intervals and each forecast of `fit_curve_csv`."""
    def estimate(name: str) -> str:
        lo, hi = result["intervals"][name]
        return f"{name} = {result[name]:.4g} [{lo:.4g}, {hi:.4g}]"

    console.print(f"L(x) = E + A x^-alpha with {estimate('E')}, {estimate('A')}, {estimate('alpha')} "
                  f"({result['n_points']} points, {int(100 * result['level'])}% bootstrap intervals)")
    for row in result["forecast"]:
        band = f"[{row['lo']:.4g}, {row['hi']:.4g}]" if row["lo"] is not None else "(no interval)"
        console.print(f"forecast at {x} = {row['x']:.4g}: {y} = {row['loss']:.4g} {band}")
    console.print(f"figure: {result['figure']}")
