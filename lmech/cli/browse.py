"""`lmech plot` and `lmech export`: see a store's runs as a figure, or copy them into another tool.

One job: parse the options and call lmech.report.plot / lmech.report.export. Registered
on the main app by `register(app)`; errors follow commands.py (one line, exit 2).
"""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lmech.errors import InputError

__all__ = ["register", "plot_command", "export_command"]

RunsDir = Annotated[Path, typer.Option("--runs", help="store directory")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
Where = Annotated[Optional[str], typer.Option("--where", help="SQL condition on the runs table, e.g. "
                                              "\"model_width = 64\"")]
Sweep = Annotated[Optional[str], typer.Option("--sweep", help="only runs of the sweep with this name")]


def register(app: typer.Typer) -> None:
    """Add the `plot` and `export` commands to `app`."""
    app.command("plot")(plot_command)
    app.command("export")(export_command)


def _store(runs: Path):
    from lmech.store import Store

    if not runs.is_dir():
        raise InputError(f"no store at {runs} (pass --runs DIR)")
    return Store(runs)


def _condition(where: str | None, sweep: str | None) -> str | None:
    parts = [f"({where})"] if where else []
    if sweep is not None:
        parts.append("sweep = '" + sweep.replace("'", "''") + "'")
    return " and ".join(parts) or None


def plot_command(
    metric: Annotated[str, typer.Argument(help="metric name, e.g. loss/train (see `lmech show`)")],
    color_by: Annotated[Optional[str], typer.Option("--color-by", help="runs field: one line per value, "
                                                    "e.g. optimizer_lr")] = None,
    x: Annotated[str, typer.Option("--x", help="'step', or a runs field: the metric's last value per run "
                                   "vs that field")] = "step",
    band: Annotated[str, typer.Option("--band", help="minmax (min-max over runs) or se (+-1 standard error)")]
    = "minmax",
    logx: Annotated[Optional[bool], typer.Option("--logx/--linx", help="x axis scale (default: log when "
                                                 "positive and spanning >10x)")] = None,
    logy: Annotated[Optional[bool], typer.Option("--logy/--liny", help="y axis scale (same default)")] = None,
    out: Annotated[Path, typer.Option("--out", help="figure file (.png, .pdf, .svg)")] = Path("lmech-plot.png"),
    runs: RunsDir = Path("lmech-runs"),
    where: Where = None,
    sweep: Sweep = None,
    as_json: JsonFlag = False,
):
    """Plot a metric of the store's runs: vs step, or its final value vs a swept field (--x)."""
    from lmech.cli.commands import _emit_json, _user_errors
    from lmech.report.plot import plot_runs

    with _user_errors():
        figure = plot_runs(_store(runs), metric, color_by=color_by, x=x, where=_condition(where, sweep),
                           logx=logx, logy=logy, band=band)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(out, dpi=120, bbox_inches="tight")
        except OSError as error:
            raise InputError(f"cannot write {out}: {error.strerror or error}") from None
    lines = [{"label": line.get_label(), "x": [float(v) for v in line.get_xdata()],
              "mean": [float(v) for v in line.get_ydata()]} for line in figure.axes[0].get_lines()]
    if as_json:
        _emit_json({"figure": str(out), "metric": metric, "x": x, "color_by": color_by, "band": band,
                    "lines": lines})
    else:
        sys.stdout.write(f"figure: {out} ({len(lines)} line{'s' if len(lines) != 1 else ''})\n")


def export_command(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="csv, tensorboard, mlflow or wandb")],
    out: Annotated[Path, typer.Option("--out", help="new file (csv) or new/empty directory (the others)")],
    runs: RunsDir = Path("lmech-runs"),
    where: Where = None,
    sweep: Sweep = None,
    as_json: JsonFlag = False,
):
    """Export every metric row of the store to CSV, TensorBoard, MLflow (file store) or W&B (offline)."""
    from lmech.cli.commands import _emit_json, _user_errors
    from lmech.report.export import export_store

    with _user_errors():
        result = export_store(_store(runs), fmt, out, where=_condition(where, sweep))
    if as_json:
        _emit_json(result)
    else:
        sys.stdout.write(f"exported {result['rows']} rows of {result['runs']} runs to {out}\n")
