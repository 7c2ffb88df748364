"""Copies of a store's metrics in other tools' formats: CSV, TensorBoard, MLflow, W&B offline.

Ignores what the runs mean: every row of the `metrics` table (run_id, step, name, value)
goes out unchanged, with the run's `runs`-table fields (CSV columns) or spec fields
(MLflow params, W&B config). Values keep float64: CSV writes repr (round-trips), TensorBoard
gets double-precision tensor scalars, MLflow and W&B store float64 themselves.

The heavy libraries are optional extras (`pip install lmech[tensorboard]`, `[mlflow]`,
`[wandb]`), imported only inside their exporter; missing, they raise InputError naming
the extra.
"""

import contextlib
import csv
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from lmech.errors import InputError

__all__ = ["export_store", "FORMATS"]

FORMATS = ("csv", "tensorboard", "mlflow", "wandb")


def export_store(store, fmt: str, out: str | os.PathLike, *, where: str | None = None) -> dict:
    """Write every metric row of the store's complete runs (those matching `where`) to `out`.

    Args:
        store: an lmech Store.
        fmt: "csv": one file `out` with columns run_id, step, name, value and then every
            `runs` column (sweep, status, spec fields, final_*; empty cell for null).
            "tensorboard": `out`/<run_id>/events.out.tfevents.* per run, one scalar tag per
            metric name (view with `tensorboard --logdir out`).
            "mlflow": a local MLflow file store in `out` (experiment = the sweep name, or
            "lmech"), one MLflow run per lmech run named by its run id, params = spec fields,
            metrics with their steps. Newer MLflow reads file stores only with the
            environment variable MLFLOW_ALLOW_FILE_STORE=true (set here while writing).
            "wandb": offline run directories `out`/wandb/offline-run-*-<run_id> for
            `wandb sync`; config = spec fields, group = the sweep name.
        out: a path that does not exist yet (or an empty directory for the directory formats).
        where: a SQL condition over the `runs` table, e.g. "sweep = 'lr'".

    Returns: {"format", "out", "runs": number of runs written, "rows": metric rows written}.

    Failure modes: an unknown format, an existing `out`, an invalid `where`, no matching
    runs, or a missing optional library raise InputError with one line.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not (fmt != "csv" and out.is_dir() and not any(out.iterdir())):
        raise InputError(f"{out} already exists; export writes only to a new path"
                         + (" or an empty directory" if fmt != "csv" else ""))
    columns, runs = _runs(store, where)
    if not runs:
        raise InputError("no runs to export" + (f" where {where}" if where else ""))
    rows = _metric_rows(store, list(runs))
    writer = {"csv": _csv, "tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}[fmt]
    writer(store, out, columns, runs, rows)
    return {"format": fmt, "out": str(out), "runs": len(runs), "rows": len(rows)}


def _query(store, sql: str, where: str | None):
    try:
        return store.query(sql)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - DuckDB's errors for a bad `where`
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"invalid where {where!r}: {first}") from None


def _runs(store, where: str | None) -> tuple[list[str], dict[str, dict]]:
    """(runs-table column names, {run_id: row as a dict}) of the selected runs, sorted by id."""
    columns = [row[0] for row in store.query("describe runs")]
    sql = "select * from runs" + (f" where ({where})" if where else "") + " order by run_id"
    return columns, {row[0]: dict(zip(columns, row)) for row in _query(store, sql, where)}


def _metric_rows(store, run_ids: list[str]) -> list[tuple[str, int, str, float]]:
    """(run_id, step, name, value) of the given runs, ordered by run, step, name."""
    chosen = set(run_ids)
    rows = store.query("select run_id, step, name, value from metrics order by run_id, step, name")
    return [row for row in rows if row[0] in chosen]


def _by_run(rows):
    grouped: dict[str, list] = {}
    for run_id, step, name, value in rows:
        grouped.setdefault(run_id, []).append((step, name, value))
    return grouped


def _spec_fields(spec: dict, prefix: str = "") -> dict:
    """A spec flattened with the `runs` table's names ({"optimizer": {"lr": 0.1}} -> optimizer_lr),
    values kept with their JSON types; lists as JSON text; the observe block left out."""
    out = {}
    for key, value in spec.items():
        if not prefix and key == "observe":
            continue
        name = "".join(c if c.isalnum() else "_" for c in f"{prefix}{key}")
        if isinstance(value, dict):
            out.update(_spec_fields(value, f"{name}_"))
        else:
            out[name] = json.dumps(value) if isinstance(value, list) else value
    return out


def _millis(created) -> int:
    try:
        return int(datetime.fromisoformat(str(created)).timestamp() * 1000)
    except ValueError:
        return 0


def _cell(value) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _csv(store, out: Path, columns, runs, rows) -> None:
    extra = [c for c in columns if c != "run_id"]
    header = ["run_id", "step", "name", "value", *extra]
    clash = [c for c in extra if c in ("step", "name", "value")]
    if clash:
        raise InputError(f"cannot export CSV: runs columns {clash} clash with the metric columns")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "x", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run_id, step, name, value in rows:
            run = runs[run_id]
            writer.writerow([run_id, step, name, _cell(value), *(_cell(run[c]) for c in extra)])


def _tensorboard(store, out: Path, columns, runs, rows) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError("the tensorboard export needs tensorboard: pip install 'lmech[tensorboard]'") from None
    grouped = _by_run(rows)
    for run_id in runs:
        writer = SummaryWriter(log_dir=str(out / run_id))
        try:
            for step, name, value in grouped.get(run_id, []):
                writer.add_scalar(name, value, step, new_style=True, double_precision=True)
        finally:
            writer.close()


@contextlib.contextmanager
def _allow_mlflow_file_store():
    """MLflow >= 3.7 refuses file stores unless MLFLOW_ALLOW_FILE_STORE=true; set it while writing."""
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _mlflow(store, out: Path, columns, runs, rows) -> None:
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError("the mlflow export needs mlflow: pip install 'lmech[mlflow]'") from None
    grouped = _by_run(rows)
    out.mkdir(parents=True, exist_ok=True)
    with _allow_mlflow_file_store():
        client = MlflowClient(tracking_uri=out.resolve().as_uri())
        experiments: dict[str, str] = {}
        for run_id, run in runs.items():
            name = run.get("sweep") or "lmech"
            if name not in experiments:
                experiments[name] = client.create_experiment(name)
            start = _millis(run.get("created"))
            tags = {"lmech.run_id": run_id, "lmech.sweep": str(run.get("sweep")),
                    "lmech.status": str(run.get("status")), "lmech.version": str(run.get("lmech_version"))}
            mlrun = client.create_run(experiments[name], start_time=start, tags=tags, run_name=run_id)
            params = [Param(k, str(v)) for k, v in _spec_fields(store.spec(run_id)).items()]
            metrics = [Metric(metric, value, start, step) for step, metric, value in grouped.get(run_id, [])]
            for i in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
                client.log_batch(mlrun.info.run_id, params=params[i:i + 100])
            for i in range(0, len(metrics), 1000):
                client.log_batch(mlrun.info.run_id, metrics=metrics[i:i + 1000])
            seconds = run.get("seconds")
            client.set_terminated(mlrun.info.run_id, end_time=start + int(1000 * (seconds or 0)))


def _wandb(store, out: Path, columns, runs, rows) -> None:
    try:
        import wandb
    except ImportError:
        raise InputError("the wandb export needs wandb: pip install 'lmech[wandb]'") from None
    grouped = _by_run(rows)
    out.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, x_disable_meta=True,
                              save_code=False, disable_git=True)
    hook = sys.excepthook
    try:
        for run_id, run in runs.items():
            _wandb_run(wandb, store, out, settings, run_id, run, grouped.get(run_id, []))
    finally:
        wandb.teardown()  # stops wandb's service process
        sys.excepthook = hook  # wandb.init replaces it


def _wandb_run(wandb, store, out: Path, settings, run_id: str, run: dict, rows) -> None:
    wrun = wandb.init(mode="offline", dir=str(out), project="lmech", id=run_id, name=run_id,
                      group=run.get("sweep"), config=_spec_fields(store.spec(run_id)), settings=settings)
    try:
        steps: dict[int, dict] = {}
        for step, name, value in rows:
            steps.setdefault(step, {})[name] = value
        for step in sorted(steps):
            wrun.log(steps[step], step=step)
    finally:
        wrun.finish()
