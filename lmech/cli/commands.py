"""The `lmech` command. Results go to stdout (one JSON object with --json), progress to stderr.

Exit codes: 0 success, 1 a verdict or check failed, 2 bad input (one line, no traceback).
"""

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lmech.cli.spec_input import MAX_DEPTH, excerpt, load_spec_text, read_spec_file, shorten
from lmech.errors import InputError

def _show_flags_as_flags() -> None:
    """typer 0.29's help prints `<bool>` after a boolean flag, as if it took a value: print nothing there."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_lmech", False):
        return
    original = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag else original(self, ctx)

    display_type_rich._lmech = True
    TyperOption.display_type_rich = display_type_rich


class _ListsPhenomena(typer.core.TyperCommand):
    """A command whose --help ends with the phenomenon names (imported only when help is shown)."""

    def format_help(self, ctx, formatter):
        from lmech.phenomena import PHENOMENA

        self.epilog = "Phenomena: " + ", ".join(PHENOMENA)
        return super().format_help(ctx, formatter)


_show_flags_as_flags()
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lmech: a laboratory for learning mechanics.")
fit_app = typer.Typer(no_args_is_help=True, help="Fit scaling laws and learning curves from a CSV.")
app.add_typer(fit_app, name="fit")


def _print_version(value: Optional[bool]) -> None:
    if value:
        import lmech

        sys.stdout.write(f"lmech {lmech.__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _options(version: Annotated[Optional[bool], typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="print lmech's version and exit")] = None) -> None:
    """lmech: a laboratory for learning mechanics."""

# Wide consoles when piped, so tables and lines are not folded at 80 columns.
stderr = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)
stdout = Console() if sys.stdout.isatty() else Console(width=160)


def _error_line(message: str) -> None:
    sys.stderr.write(f"error: {shorten(message, 1000)}\n")  # a message quoting input stays one short line

RunsDir = Annotated[Path, typer.Option("--runs", help="store directory")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="override a field: key.path=value")]


def _validation_line(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:3]:
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        got = e.get("input")
        shown = f" (got {excerpt(got)})" if got is not None and not isinstance(got, dict) else ""
        parts.append(f"{shorten(where, 100)}: {shorten(e['msg'], 200)}{shown}")
    return "invalid spec: " + "; ".join(parts)


@contextlib.contextmanager
def _user_errors():
    """Turn bad input into one line on stderr and exit code 2."""
    try:
        yield
    except ValidationError as error:
        _error_line(_validation_line(error))
        raise typer.Exit(2) from None
    except (InputError, ValueError, FileNotFoundError, IsADirectoryError, yaml.YAMLError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        _error_line(message)
        raise typer.Exit(2) from None


def _parse_sets(sets: list[str] | None) -> dict[str, object]:
    """{dotted key: YAML value} of `--set key=value` items, read within the spec-file limits
    (`lmech.cli.spec_input`; 1e-6 and 1e3 are numbers there, not the strings of YAML 1.1)."""
    out = {}
    for item in sets or []:
        if "=" not in item:
            raise InputError(f"--set expects key=value, got {excerpt(item)}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key or len(key) > 200 or key.count(".") >= MAX_DEPTH:
            raise InputError(f"--set key {excerpt(key)} must be a dotted field path of at most 200 characters "
                             f"and {MAX_DEPTH} parts")
        out[key] = load_spec_text(value, f"--set {key}")
    return out


@contextlib.contextmanager
def _progress(description: str, enabled: bool = True):
    """A progress bar on stderr; yields callback(done, total)."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def _spinner(message: str, enabled: bool = True):
    """A spinner on stderr for work without a natural progress count."""
    if not enabled:
        yield
        return
    with stderr.status(message):
        yield


def _finite(value):
    """JSON-safe: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _emit_json(obj) -> None:
    sys.stdout.write(json.dumps(_finite(obj), default=lambda o: _finite(float(o)), allow_nan=False) + "\n")


ExecutorOption = Annotated[Optional[str], typer.Option("--executor", help="local | process | ray (default: process "
                                                      "when --workers > 1, else local)")]
RayAddressOption = Annotated[Optional[str], typer.Option("--ray-address", help="with --executor ray: auto or "
                                                         "HOST:PORT of a running cluster (default: start a local one)")]


def _check_executor(executor: str | None, ray_address: str | None, allow_none: bool = False) -> None:
    if executor is None and allow_none:
        executor = "local"
    if executor not in ("local", "process", "ray"):
        raise InputError(f"unknown executor '{str(executor)[:40]}' (local, process, ray)")
    if ray_address is not None and executor != "ray":
        raise InputError("--ray-address needs --executor ray")


def _atlas_store(runs: Path, prefix: str, resume: bool) -> Path:
    """A fresh store for this atlas run (verdicts come from this run's measurements), or with
    --resume the newest earlier one. Nothing is deleted, so concurrent runs cannot clobber each other."""
    earlier = sorted(p for p in runs.glob(f"{prefix}-*") if p.is_dir()) if runs.is_dir() else []
    if resume and earlier:
        return earlier[-1]
    return runs / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


@app.command(cls=_ListsPhenomena)
def atlas(
    only: Annotated[Optional[list[str]], typer.Option("--only", help="run only this phenomenon (repeatable)")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="small sizes: each phenomenon in <= 90 s")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="reuse the runs of the newest earlier atlas")] = False,
    runs: RunsDir = Path("lmech-runs"),
    report: Annotated[Path, typer.Option("--report", help="reports folder: this run's report is kept in "
                                         "<folder>/<store name>/; <folder>/index.html shows the newest and lists all")] = Path("lmech-report"),
    workers: Annotated[int, typer.Option(help="worker processes for phenomena with several ensemble jobs")] = 2,
    executor: ExecutorOption = None,
    ray_address: RayAddressOption = None,
    as_json: JsonFlag = False,
):
    """Run the atlas: every phenomenon's prediction vs measurement, a scorecard and an HTML report."""
    from lmech.phenomena import PHENOMENA, get_phenomenon, run_phenomenon
    from lmech.report import print_scorecard, write_report
    from lmech.store import Store

    with _user_errors():
        _check_executor(executor, ray_address, allow_none=True)
        chosen = [get_phenomenon(name) for name in only] if only else list(PHENOMENA.values())
        store = Store(_atlas_store(runs, "atlas-fast" if fast else "atlas", resume))
        verdicts = []
        for phenomenon in chosen:
            with _progress(phenomenon.name, enabled=not as_json) as progress:
                verdicts.append(run_phenomenon(phenomenon, store, fast, progress=progress,
                                                workers=workers, executor=executor, ray_address=ray_address))
            if not as_json:
                v = verdicts[-1]
                stderr.print(f"{v.name}: {'PASS' if v.passed else 'FAIL'} ({v.seconds:.1f} s)")
        page = write_report(verdicts, report, store=store.root, fast=fast)
    if as_json:
        _emit_json({"passed": all(v.passed for v in verdicts), "report": str(page),
                    "verdicts": [v.to_json() for v in verdicts]})
    else:
        print_scorecard(verdicts, stdout)
        stdout.print(f"report: {page}")
    raise typer.Exit(0 if all(v.passed for v in verdicts) else 1)


@app.command(cls=_ListsPhenomena)
def run(
    name: Annotated[str, typer.Argument(help="phenomenon name (listed below)")],
    sets: Sets = None,
    fast: Annotated[bool, typer.Option("--fast", help="small sizes (at most 90 s per phenomenon on 2 cores)")] = False,
    runs: RunsDir = Path("lmech-runs"),
    as_json: JsonFlag = False,
):
    """Run one phenomenon, with optional overrides of its run specs (e.g. --set steps=500)."""
    from lmech.phenomena import get_phenomenon, run_phenomenon
    from lmech.report import print_scorecard
    from lmech.store import Store

    with _user_errors():
        phenomenon = get_phenomenon(name)
        overrides = _parse_sets(sets)
        with _progress(name, enabled=not as_json) as progress:
            verdict = run_phenomenon(phenomenon, Store(runs), fast, overrides, progress)
    if as_json:
        _emit_json(verdict.to_json())
    else:
        print_scorecard([verdict], stdout)
    raise typer.Exit(0 if verdict.passed else 1)


def _load_sweep(path: Path | None, sets: dict[str, object]):
    from lmech.spec import SweepSpec, set_field

    tree: dict = {} if path is None else read_spec_file(path)  # size, depth, alias and empty-file limits
    for key, value in sets.items():
        try:
            set_field(tree, key, value, create=True)
        except ValueError as error:
            raise InputError(f"--set {key}: {error}") from None
    return SweepSpec.model_validate(tree)


@app.command()
def sweep(
    spec: Annotated[Optional[Path], typer.Argument(help="YAML sweep spec (fields of RunSpec + sweep axes)")] = None,
    sets: Sets = None,
    runs: RunsDir = Path("lmech-runs"),
    executor: Annotated[str, typer.Option(help="local | process | ray")] = "local",
    workers: Annotated[int, typer.Option(help="processes for --executor process; CPUs of a local Ray cluster")] = 2,
    ray_address: RayAddressOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and expand the sweep; list its runs, "
                                          "train nothing")] = False,
    as_json: JsonFlag = False,
):
    """Train a sweep of your own; finished runs are skipped, so rerunning resumes."""
    from rich.markup import escape  # the sweep's name is user text: never rich markup

    from lmech.engine import execute
    from lmech.spec import expand_sweep
    from lmech.store import Store

    with _user_errors():
        _check_executor(executor, ray_address)
        sweep_spec = _load_sweep(spec, _parse_sets(sets))
        specs = expand_sweep(sweep_spec)
        store = Store(runs)
        if dry_run:
            _print_plan(specs, store, as_json)
            return
        with _progress(f"sweep {escape(sweep_spec.name)}", enabled=not as_json) as progress:
            outcome = execute(specs, store, executor=executor, workers=workers, progress=progress,
                              sweep=sweep_spec.name, ray_address=ray_address)
    rows = [_run_row(store, run_id) for run_id in outcome.run_ids]
    if as_json:
        _emit_json({"trained": outcome.trained, "skipped": outcome.skipped, "diverged": outcome.diverged,
                    "seconds": outcome.seconds, "runs": rows})
    else:
        stdout.print(_runs_table(rows))
        stdout.print(f"trained {outcome.trained}, skipped {outcome.skipped} (already in {runs}), "
                     f"diverged {outcome.diverged}, {outcome.seconds:.1f} s")


def _print_plan(specs, store, as_json: bool) -> None:
    """`sweep --dry-run`: the runs a sweep expands to, each new or already in the store; nothing is written."""
    rows = []
    for spec in specs:
        tree, run_id = spec.model_dump(mode="json"), spec.id
        rows.append({"run_id": run_id, "status": "done" if store.has(run_id) else "new",
                     "task": tree["task"]["name"], "model": _model_label(tree["model"]),
                     "optimizer": f"{tree['optimizer']['name']} lr={tree['optimizer']['lr']:g}",
                     "seed": tree["seed"], "steps": tree["steps"]})
    new = sum(row["status"] == "new" for row in rows)
    if as_json:
        _emit_json({"dry_run": True, "new": new, "done": len(rows) - new, "runs": rows})
        return
    from rich.markup import escape

    stdout.print(_runs_table([dict(row, train_loss="-", test_loss="-") for row in rows]))
    stdout.print(f"dry run: {len(rows)} runs, {new} to train, {len(rows) - new} already in "
                 f"{escape(str(store.root))}; nothing trained")


def _model_label(model: dict) -> str:
    """A short model description from a spec's model section (any family, or none)."""
    if not isinstance(model, dict) or not model:
        return "-"
    if model.get("kind") == "factory":
        return f"factory {model.get('factory', '?')}"
    parts = [str(model.get("kind", "mlp"))]
    parts += [f"{key[0]}{model[key]}" for key in ("width", "depth") if key in model]
    return " ".join(parts + [str(model.get("parameterization", ""))]).strip()


def _run_row(store, run_id: str) -> dict:
    spec, summary = store.spec(run_id), store.summary(run_id)
    model, optimizer = spec.get("model") or {}, spec.get("optimizer") or {}
    final = summary.get("final") or {}
    return {"run_id": run_id, "status": summary.get("status", "?"),
            "task": (spec.get("task") or {}).get("name", spec.get("name", "?")),
            "model": _model_label(model),
            "optimizer": f"{optimizer['name']} lr={optimizer['lr']:g}" if optimizer else "-",
            "seed": spec.get("seed", "-"), "steps": spec.get("steps", summary.get("steps", "-")),
            "train_loss": final.get("loss/train"), "test_loss": final.get("loss/test")}


def _runs_table(rows: list[dict]):
    from rich.markup import escape  # names and specs are user text: never rich markup
    from rich.table import Table

    table = Table()
    for column in ("run_id", "status", "task", "model", "optimizer", "seed", "steps", "train_loss", "test_loss"):
        table.add_column(column)
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else escape(str(v)) for v in row.values()])
    return table


def _stores(runs: Path):
    """The store at --runs and the stores one level below it (atlas runs live there)."""
    from lmech.store import Store

    below = [Store(p) for p in sorted(runs.iterdir()) if p.is_dir()] if runs.is_dir() else []
    return [Store(runs), *below]


@app.command("ls")
def list_runs(
    runs: RunsDir = Path("lmech-runs"),
    where: Annotated[Optional[str], typer.Option("--where", help="SQL condition on the runs table, e.g. "
                                                 "\"optimizer_lr > 0.01 and model_width = 64\"")] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="only runs of the sweep with this name")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="at most this many runs")] = None,
    as_json: JsonFlag = False,
):
    """List finished runs in the store (searched recursively one level: atlas stores too)."""
    with _user_errors():
        conditions = [f"({where})"] if where else []
        if sweep is not None:
            conditions.append("sweep = '" + sweep.replace("'", "''") + "'")
        with _spinner(f"reading {runs}", enabled=not as_json):
            rows = _listed_rows(runs, conditions)
        rows = rows[:limit] if limit else rows
    if as_json:
        _emit_json({"runs": rows})
    else:
        stdout.print(_runs_table([{k: v for k, v in r.items() if k != "store"} for r in rows]))
        stdout.print(f"{len(rows)} runs")


def _listed_rows(runs: Path, conditions: list[str]) -> list[dict]:
    """`lmech ls`'s rows: every (matching) run of every store at or one level below `runs`."""
    rows = []
    for store in _stores(runs):
        if not store.run_ids():  # a run directory, or an empty store: nothing to list or query
            continue
        if conditions:
            try:
                ids = [r for (r,) in store.query("select run_id from runs where " + " and ".join(conditions)
                                                 + " order by run_id")]
            except Exception as error:  # duckdb's parser and binder errors: the user's SQL
                raise InputError(f"--where: {str(error).splitlines()[0]}") from None
        else:
            ids = store.run_ids()
        rows += [dict(_run_row(store, i), store=str(store.root)) for i in ids]
    return rows


@app.command()
def show(run_id: Annotated[str, typer.Argument()], runs: RunsDir = Path("lmech-runs"), as_json: JsonFlag = False):
    """Show one run: its spec, summary and final metrics."""
    with _user_errors():
        from lmech.store import check_run_id

        check_run_id(run_id)  # an id, never a path: nothing outside the store is read
        stores = _stores(runs)
        if not any(s.path(run_id).exists() for s in stores):  # a short prefix of one run's id
            matches = sorted({i for s in stores for i in s.run_ids() if i.startswith(run_id)})
            if len(matches) > 1:
                raise InputError(f"'{run_id}' is the start of {len(matches)} run ids "
                                 f"({', '.join(matches[:3])}, ...): give more characters")
            run_id = matches[0] if matches else run_id
        store = next((s for s in stores if s.has(run_id)), None)
        if store is None:
            reasons = [s.verify(run_id) for s in stores if s.path(run_id).exists()]
            raise InputError(f"run '{run_id}' in {runs} is incomplete: {reasons[0]}" if reasons else f"no run '{run_id}' in {runs}")
        spec, summary = store.spec(run_id), store.summary(run_id)
        metrics = store.metrics(run_id)
    if as_json:
        _emit_json({"run_id": run_id, "spec": spec, "summary": summary, "rows": len(metrics["step"])})
        return
    stdout.print_json(json.dumps(_finite({"spec": spec, "summary": summary})))


@app.command()
def doctor(runs: RunsDir = Path("lmech-runs"),
           repair: Annotated[bool, typer.Option("--repair", help="remove temporary leftovers and incomplete runs")] = False,
           as_json: JsonFlag = False):
    """Check the store: list incomplete, corrupt and orphaned entries (exit 1 if any remain)."""
    from rich.markup import escape

    from lmech.store.doctor import doctor as check_store

    with _user_errors():
        if not runs.is_dir():
            raise InputError(f"no store at {runs}")
        reports = [check_store(runs, repair=repair)]
        reports += [check_store(runs / name, repair=repair) for name in reports[0].nested]
    if as_json:
        _emit_json({"ok": all(r.ok for r in reports), "stores": [r.to_json() for r in reports]})
    else:
        for report in reports:
            stdout.print(f"{escape(str(report.root))}: {len(report.complete)} complete runs")
            for finding in report.findings:
                action = " (removed)" if finding.removed else ""
                stdout.print(f"  {finding.kind}: {escape(finding.name)}: {escape(finding.reason)}{action}")
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="report directory")] = Path("lmech-report"),
    runs: Annotated[Optional[Path], typer.Option("--runs", help="a store: write its run browser (runs table, "
                                                 "curves) to <out>/runs/<store name>/index.html")] = None,
    as_json: JsonFlag = False,
):
    """Render the HTML report again from the verdicts saved in --out, the reports folder (its newest report) or
    one kept report folder in it (exit 1 if a verdict failed); with --runs, the run browser of that store."""
    from lmech.report import print_scorecard, rerender_report

    if runs is not None:
        _report_runs(runs, out, as_json)
        return
    with _user_errors():
        if not (out / "verdicts.json").is_file():
            raise InputError(f"no verdicts in {out}: run `lmech atlas` first")
        verdicts, page = rerender_report(out)
    if as_json:
        _emit_json({"passed": all(v.passed for v in verdicts), "report": str(page),
                    "verdicts": [v.to_json() for v in verdicts]})
    else:
        print_scorecard(verdicts, stdout)
        stdout.print(f"report: {page}")
    raise typer.Exit(0 if all(v.passed for v in verdicts) else 1)


def _report_runs(runs: Path, out: Path, as_json: bool) -> None:
    from lmech.report.runs_page import write_runs_page
    from lmech.store import Store

    with _user_errors():
        if not runs.is_dir():
            raise InputError(f"no store at {runs} (pass --runs DIR)")
        store = Store(runs)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in runs.resolve().name) or "store"
        with _spinner(f"run browser of {runs}", enabled=not as_json):
            page = write_runs_page(store, out / "runs" / name, nav='<a href="../../reports.html">all reports</a>')
    if as_json:
        _emit_json({"runs": str(runs), "page": str(page)})
    else:
        stdout.print(f"run browser: {page} (serve it with `lmech serve --out {out}`)", markup=False)


@app.command()
def serve(
    out: Annotated[Path, typer.Option("--out", help="report directory")] = Path("lmech-report"),
    host: Annotated[str, typer.Option("--host", help="address to listen on (loopback only unless --allow-remote)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port (0: a free one)")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="allow a --host other machines can reach")] = False,
):
    """Serve the report folder read-only over HTTP (on this machine only by default) until Ctrl-C."""
    from lmech.report.serve import check_host, make_server

    with _user_errors():
        check_host(host, allow_remote)
        server = make_server(out, host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    stderr.print(f"serving {out} at http://{shown}:{server.server_address[1]}/ (Ctrl-C to stop)", markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


MIN_BOOTSTRAP, MAX_BOOTSTRAP = 10, 100_000


def _check_fit_options(bootstrap: int, name: str, points: list[float], largest: float) -> None:
    """`lmech fit` options in range: enough bootstrap resamples for an interval, few enough to finish,
    and forecast points or budgets finite, > 0 and at most `largest` (past it the law overflows)."""
    if not MIN_BOOTSTRAP <= bootstrap <= MAX_BOOTSTRAP:
        raise InputError(f"--bootstrap must be between {MIN_BOOTSTRAP} and {MAX_BOOTSTRAP} resamples, got {bootstrap}")
    for value in points:
        if not (math.isfinite(value) and 0 < value <= largest):
            raise InputError(f"{name} {value:g} must be a finite number > 0 and at most {largest:g}")


@fit_app.command("scaling")
def fit_scaling(
    csv: Annotated[Path, typer.Argument(help="CSV with model size, data size and loss columns")],
    n_col: Annotated[str, typer.Option("--n-col", help="parameter-count column")] = "N",
    d_col: Annotated[str, typer.Option("--d-col", help="data-size column")] = "D",
    loss_col: Annotated[str, typer.Option("--loss-col", help="loss column")] = "loss",
    budget: Annotated[Optional[list[float]], typer.Option("--budget", help="compute budget C = 6ND (repeatable)")] = None,
    law: Annotated[str, typer.Option(help="additive: E + A/N^alpha + B/D^beta (Chinchilla); coupled: "
                                          "E + ((A/N^alpha)^(1/p) + (B/D^beta)^(1/p))^p")] = "additive",
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the intervals")] = 100,
    figure: Annotated[Path, typer.Option("--figure", help="PNG to write")] = Path("lmech-report/scaling-fit.png"),
    as_json: JsonFlag = False,
):
    """Fit L = E + A/N^alpha + B/D^beta (Chinchilla approach 3; --law coupled adds a coupling p) with
    bootstrap intervals and allocate budgets."""
    from lmech.cli.fit_commands import fit_scaling_csv, print_scaling_fit, scaling_figure

    with _user_errors():
        _check_fit_options(bootstrap, "--budget", budget or [], 1e40)
        with _spinner(f"fitting with {bootstrap} bootstrap resamples", enabled=not as_json):
            result = fit_scaling_csv(csv, n_col, d_col, loss_col, budget or [], law=law, bootstrap=bootstrap)
        result["figure"] = str(scaling_figure(csv, figure, result, n_col, d_col, loss_col))
    if as_json:
        _emit_json(result)
        return
    print_scaling_fit(result, stdout)


@fit_app.command("curve")
def fit_curve(
    csv: Annotated[Path, typer.Argument(help="CSV with a step/compute column and a loss column")],
    x: Annotated[str, typer.Option("--x", help="x column (steps, tokens, compute)")] = "step",
    y: Annotated[str, typer.Option("--y", help="loss column")] = "loss",
    at: Annotated[Optional[list[float]], typer.Option("--at", help="x to forecast at (repeatable)")] = None,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the intervals")] = 100,
    figure: Annotated[Path, typer.Option("--figure", help="PNG to write")] = Path("lmech-report/curve-fit.png"),
    as_json: JsonFlag = False,
):
    """Fit L(x) = E + A x^-alpha to a learning curve and forecast it with an interval."""
    from lmech.cli.fit_commands import curve_figure, fit_curve_csv, print_curve_fit

    with _user_errors():
        _check_fit_options(bootstrap, "--at", at or [], 1e30)
        with _spinner(f"fitting with {bootstrap} bootstrap resamples", enabled=not as_json):
            result = fit_curve_csv(csv, x, y, at or [], bootstrap=bootstrap)
        result["figure"] = str(curve_figure(csv, figure, result, x, y))
    if as_json:
        _emit_json(result)
        return
    print_curve_fit(result, stdout, x, y)


def _user_model_and_data(model: str, task: str | None, data: str | None, weights: Path | None, loss: str | None):
    """(module, (inputs, targets), loss name) for a user's factory and data, checked to run together."""
    from lmech.cli.user_code import check_runs, choose_loss, load_data, load_model, task_data

    if (task is None) == (data is None):
        raise InputError("give exactly one of --task NAME or --data pkg.module:function")
    inputs, targets = task_data(task) if task is not None else load_data(data)
    loss_name = choose_loss(loss, targets)
    net = load_model(model, weights)
    check_runs(net, inputs, targets, loss_name)
    return net, (inputs, targets), loss_name


def _measured(call):
    """Run an instrument call; a RuntimeError from the model on this data is one line."""
    try:
        return call()
    except RuntimeError as error:
        raise InputError(f"the model cannot be measured on this data: {str(error).splitlines()[0]}") from None


LossOption = Annotated[Optional[str], typer.Option("--loss", help="mse (torch's mse_loss: mean over elements) | "
                                                   "half_sse (0.5 sum over outputs, mean over examples) | "
                                                   "cross_entropy (default: from the targets)")]
ModeOption = Annotated[str, typer.Option("--mode", help="eval (default) | train (dropout on, seeded)")]


@fit_app.command("noise-scale")
def fit_noise_scale(
    model: Annotated[str, typer.Option("--model", help="factory returning an nn.Module: pkg.module:function")],
    task: Annotated[Optional[str], typer.Option("--task", help="a built-in task's training set (e.g. digits)")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="function returning (inputs, targets): pkg.module:function")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="state dict saved with torch.save")] = None,
    loss: LossOption = None,
    pairs: Annotated[int, typer.Option("--pairs", help="(small, big) batch pairs")] = 32,
    seed: Annotated[int, typer.Option("--seed", help="seed of the batch draws")] = 0,
    mode: ModeOption = "eval",
    as_json: JsonFlag = False,
):
    """Gradient noise scale B_simple of your model on your data, and the critical batch it forecasts."""
    from lmech.instruments.losses import named_loss
    from lmech.observables import measure

    with _user_errors():
        net, batch, loss_name = _user_model_and_data(model, task, data, weights, loss)
        options = {"num_pairs": pairs, "seed": seed, "mode": mode}
        with _spinner(f"{pairs} pairs of gradients", enabled=not as_json):
            result = _measured(lambda: measure(net, named_loss(loss_name), batch, ["critical_batch_forecast"],
                                               critical_batch_forecast=options))["critical_batch_forecast"]
    if as_json:
        _emit_json({**result.to_json(), "loss": loss_name, "mode": mode})
        return
    stdout.print(f"B_simple = {result.b_simple:.4g} ± {result.b_simple_se:.2g} examples "
                 f"(|G|^2 = {result.grad_norm_sq:.3g}, tr Sigma = {result.trace_sigma:.3g}, "
                 f"{result.num_pairs} pairs of batches {result.small_batch}/{result.big_batch}, loss {loss_name})")
    stdout.print(f"forecast critical batch B_crit ≈ {result.b_crit:.3g} [{result.b_crit_lo:.3g}, {result.b_crit_hi:.3g}]"
                 " (McCandlish et al. 2018; it grows as training proceeds)")
    if not result.resolved:
        stdout.print("warning: |G|^2 is not resolved (noise dominates): use more --pairs or a larger data set")


@app.command("measure")
def measure_command(
    model: Annotated[str, typer.Option("--model", help="factory returning an nn.Module: pkg.module:function")],
    observables: Annotated[str, typer.Option("--observables", help="comma-separated, e.g. sharpness,hessian_trace,ntk_gram")],
    task: Annotated[Optional[str], typer.Option("--task", help="a built-in task's training set (e.g. digits)")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="function returning (inputs, targets): pkg.module:function")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="state dict saved with torch.save")] = None,
    loss: LossOption = None,
    sets: Annotated[Optional[list[str]], typer.Option("--set", help="instrument option: name.key=value, e.g. sharpness.k=3")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of every instrument that takes one")] = 0,
    mode: ModeOption = "eval",
    device: Annotated[Optional[str], typer.Option("--device", help="cpu | cuda | cuda:N | auto (default: cpu)")] = None,
    as_json: JsonFlag = False,
):
    """Measure instruments (sharpness, hessian_trace, ntk_gram, ...) on your model and data (eval mode by default)."""
    from lmech.instruments.losses import named_loss
    from lmech.observables import REGISTRY, check_request, measure

    with _user_errors():
        options: dict[str, dict] = {}
        for key, value in _parse_sets(sets).items():
            name, dot, option = key.partition(".")
            if not dot or not option:
                raise InputError(f"--set expects instrument.option=value (e.g. sharpness.k=3), got '{key}'")
            options.setdefault(name, {})[option] = value
        names = check_request(observables, options)
        if mode not in ("eval", "train"):
            raise InputError(f"--mode must be eval or train, got '{mode}'")
        net, batch, loss_name = _user_model_and_data(model, task, data, weights, loss)
        with _spinner(f"measuring {', '.join(names)}", enabled=not as_json):
            result = _measured(lambda: measure(net, named_loss(loss_name), batch, names, seed=seed, mode=mode,
                                               device=device, **options))
    if as_json:
        _emit_json({"loss": loss_name, "mode": mode, "results": result.to_json()})
        return
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    for column in ("metric", "value"):
        table.add_column(column)
    rows = result.rows()
    for name in names:
        for metric, value in rows.items():
            if metric.startswith(f"{name}/"):
                table.add_row(escape(metric), f"{value:.6g}")
        for field, value in result[name].to_json().items():
            if isinstance(value, list) and not any(m.startswith(f"{name}/{field}/") for m in rows):
                table.add_row(escape(f"{name}/{field}"), f"array {np.shape(value)}")
            elif isinstance(value, str):
                table.add_row(escape(f"{name}/{field}"), escape(value))
    stdout.print(table)
    from lmech.instruments._call import num_examples

    stdout.print(f"{num_examples(batch[0])} examples, loss {loss_name}, {mode} mode; costs: "
                 + "; ".join(f"{n}: {REGISTRY[n].cost}" for n in names))


from lmech.cli.browse import register as _register_browse  # noqa: E402  (lmech plot, lmech export)

_register_browse(app)

from lmech.cli.compare_commands import register as _register_compare  # noqa: E402  (lmech compare-optimizers)
from lmech.cli.forecast_commands import forecast_app  # noqa: E402  (lmech forecast ...)

_register_compare(app)
app.add_typer(forecast_app, name="forecast")


def main() -> None:
    """Entry point. One torch thread per process by default (LMECH_THREADS overrides): the
    microcosm models are too small for intra-op threads, which collapse when another process
    holds a core; parallelism comes from ensembles and worker processes instead."""
    import torch

    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("LMECH_THREADS", "1"))
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # numpy/scipy BLAS too (the fitters' small problems)
    sys.exit(run_app(sys.argv[1:]))


def run_app(args: list[str]) -> int:
    """Run the CLI on `args` and return its exit code. A usage error (unknown option, missing or
    malformed value) is one line on stderr and exit 2, like every other bad input; a bare
    command group still prints its help."""
    try:  # typer >= 0.25 vendors click as typer._click; older typer uses click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as click_errors

    try:
        code = app(args, prog_name="lmech", standalone_mode=False)
    except click_errors.NoArgsIsHelpError:  # the help has been printed
        return 0
    except click_errors.UsageError as error:
        where = error.ctx.command_path if error.ctx else "lmech"
        sys.stderr.write(f"{where}: {' '.join(error.format_message().split())} (see '{where} --help')\n")
        return 2
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
