"""`lmech compare-optimizers`: tune each optimizer on one lr grid with the same seeds, compare on test.

One job: parse the options, call lmech.compare.compare_optimizers, print the tables (or one JSON
object) and optionally draw validation loss against lr. Errors: one line, exit 2.
"""

from pathlib import Path
from typing import Annotated, Optional, get_args

import typer

from lmech.errors import InputError

__all__ = ["register", "compare_optimizers_command", "parse_lr_grid", "parse_optimizers"]


def register(app: typer.Typer) -> None:
    """Add `compare-optimizers` to `app`."""
    app.command("compare-optimizers")(compare_optimizers_command)


def parse_lr_grid(text: str) -> list[float]:
    """'LOW:HIGH:COUNT' (log-spaced, inclusive) or a comma list '1e-3,3e-3,1e-2'."""
    from lmech.compare import log_grid

    text = text.strip()
    try:
        if ":" in text:
            low, high, count = text.split(":")
            low, high, count = float(low), float(high), int(count)
        else:
            values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--lr-grid: expected LOW:HIGH:COUNT (e.g. 1e-3:1e-1:5) or a comma list, "
                         f"got '{text[:80]}'") from None
    if ":" in text:
        return log_grid(low, high, count)
    if len(values) < 2:
        raise InputError(f"--lr-grid: the grid needs at least 2 values to tune on, got {len(values)}")
    if not all(v > 0 and v < float("inf") for v in values):
        raise InputError("--lr-grid: every learning rate must be positive and finite")
    return values


def parse_optimizers(text: str) -> list[str]:
    """Comma-separated optimizer names, each one lmech trains, no repeats."""
    from lmech.spec import OptimizerSpec

    known = get_args(OptimizerSpec.model_fields["name"].annotation)
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name not in known:
            raise InputError(f"--optimizers: unknown optimizer '{name[:40]}'; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise InputError("--optimizers: an optimizer is named twice")
    if len(names) < 2:
        raise InputError(f"--optimizers: compare at least 2 optimizers, got {len(names)}")
    return names


def compare_optimizers_command(
    spec: Annotated[Path, typer.Argument(help="YAML run spec: task, model, steps, and the optimizer settings the "
                                         "optimizers share (batch_size, schedule, weight_decay, ...)")],
    optimizers: Annotated[str, typer.Option("--optimizers", help="comma-separated, e.g. adamw,muon,soap")],
    lr_grid: Annotated[str, typer.Option("--lr-grid", help="LOW:HIGH:COUNT, log-spaced (e.g. 1e-3:1e-1:5), "
                                         "or a comma list")] = "1e-3:1e-1:5",
    seeds: Annotated[int, typer.Option("--seeds", help="seeds per (optimizer, lr), the same for every optimizer")] = 5,
    level: Annotated[float, typer.Option("--level", help="confidence level of the intervals")] = 0.95,
    sets: Annotated[Optional[list[str]], typer.Option("--set", help="override a spec field, e.g. steps=500")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="store directory (finished runs are reused)")] = Path("lmech-runs"),
    workers: Annotated[int, typer.Option(help="worker processes (one ensemble job per optimizer)")] = 1,
    figure: Annotated[Optional[Path], typer.Option("--figure", help="write validation loss vs lr to this PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
):
    """Compare optimizers fairly: one lr grid, the same seeds, lr chosen on validation, test loss with intervals."""
    from lmech.cli.commands import _emit_json, _load_sweep, _parse_sets, _progress, _user_errors, stdout
    from lmech.compare import compare_optimizers
    from lmech.spec import OptimizerSpec, RunSpec
    from lmech.store import Store

    with _user_errors():
        names = parse_optimizers(optimizers)
        grid = parse_lr_grid(lr_grid)
        if seeds < 2:
            raise InputError(f"--seeds: at least 2 seeds are needed for an interval, got {seeds}")
        if workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        loaded = _load_sweep(spec, _parse_sets(sets))
        if loaded.sweep:
            raise InputError("the spec has sweep axes; compare-optimizers sweeps the lr itself (remove `sweep:`)")
        base = RunSpec.model_validate(loaded.model_dump(exclude={"name", "sweep"}))
        shared = base.optimizer.model_dump(exclude={"name", "lr"})
        contenders = {name: OptimizerSpec.model_validate({**shared, "name": name, "lr": grid[0]}) for name in names}
        with _progress("compare-optimizers", enabled=not as_json) as progress:
            result = compare_optimizers(Store(runs), base, contenders, grid, list(range(seeds)), level,
                                        progress=progress, workers=workers)
        if figure is not None:
            _draw(result, figure)
    if as_json:
        _emit_json(result.to_json())
        return
    _print(result, stdout)
    if figure is not None:
        stdout.print(f"figure: {figure}")


def _print(result, console) -> None:
    from rich.table import Table

    percent = f"{100 * result.level:g}%"
    table = Table(title=f"best lr on validation; final test loss, mean over {len(next(iter(result.results.values())).seeds)} "
                        f"seeds [{percent} bootstrap interval]")
    for column in ("optimizer", "best lr", "test loss", "interval"):
        table.add_column(column)
    for r in sorted(result.results.values(), key=lambda r: r.test_interval.estimate):
        edge = " (grid edge: widen --lr-grid)" if r.at_edge else ""
        i = r.test_interval
        table.add_row(r.label, f"{r.best_lr:.3g}{edge}", f"{i.estimate:.5g}", f"[{i.low:.5g}, {i.high:.5g}]")
    console.print(table)
    pairs = Table(title=f"differences of mean test loss ({'paired by seed' if result.paired else 'unpaired'})")
    for column in ("first - second", "difference", "interval", "significant"):
        pairs.add_column(column)
    for (a, b), d in result.differences.items():
        pairs.add_row(f"{a} - {b}", f"{d.estimate:+.4g}", f"[{d.low:+.4g}, {d.high:+.4g}]",
                      "yes" if d.excludes_zero else "no")
    console.print(pairs)


def _draw(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in result.results.values():
        means = [float(np.mean(row)) if np.all(np.isfinite(row)) else np.nan for row in r.validation]
        line, = ax.plot(r.lr_grid, means, "o-", label=f"{r.label} (best {r.best_lr:.3g})")
        ax.plot([r.best_lr], [means[r.lr_grid.index(r.best_lr)]], "*", ms=14, color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation loss (mean over seeds; gap = diverged)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as error:
        raise InputError(f"--figure: cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(fig)
