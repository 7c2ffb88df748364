"""Run records on disk: one directory per finished run, written atomically; queries with DuckDB.

Layout: <root>/<run_id>/{spec.json, summary.json, metrics.parquet, params.pt}.
A run is written into <root>/.tmp-<run_id>-<random>/ and renamed into place, so a
killed process never leaves a directory that looks complete. Nothing read from a
run directory is executed: JSON is parsed, tensors load with weights_only=True.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lmech.errors import InputError

__all__ = ["Store", "METRIC_COLUMNS"]

METRIC_COLUMNS = ("run_id", "step", "name", "value")
_REQUIRED = ("spec.json", "summary.json", "metrics.parquet")


class Store:
    """A directory of run records."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / run_id

    def has(self, run_id: str) -> bool:
        """True when the run finished and its record is complete."""
        directory = self.path(run_id)
        return all((directory / name).is_file() for name in _REQUIRED)

    def write(self, run_id: str, spec: dict, rows: list[tuple[int, str, float]], summary: dict,
              params: dict[str, torch.Tensor] | None = None) -> Path:
        """Write one run atomically; a complete record of the same id is left as it is."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(run_id)
        tmp = self.root / f".tmp-{run_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            table = pa.table({
                "run_id": pa.array([run_id] * len(rows), pa.string()),
                "step": pa.array([r[0] for r in rows], pa.int64()),
                "name": pa.array([r[1] for r in rows], pa.string()),
                "value": pa.array([r[2] for r in rows], pa.float64()),
            })
            pq.write_table(table, tmp / "metrics.parquet")
            if params is not None:
                torch.save({k: v.detach().cpu() for k, v in params.items()}, tmp / "params.pt")
            (tmp / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
            if final.exists():
                if self.has(run_id):
                    shutil.rmtree(tmp)
                    return final
                shutil.rmtree(final)  # an incomplete leftover: replace it
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def run_ids(self) -> list[str]:
        """Ids of complete runs, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and self.has(p.name))

    def _json(self, run_id: str, name: str) -> dict:
        path = self.path(run_id) / name
        if not self.path(run_id).is_dir():
            raise InputError(f"no run '{run_id}' in {self.root}")
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"run '{run_id}' is incomplete or corrupt: {name} is missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"run '{run_id}' is corrupt: {name} is not valid JSON ({error.msg if hasattr(error, 'msg') else error})") from None

    def spec(self, run_id: str) -> dict:
        return self._json(run_id, "spec.json")

    def summary(self, run_id: str) -> dict:
        return self._json(run_id, "summary.json")

    def metrics(self, run_id: str) -> dict[str, list]:
        """Columns step, name, value of one run."""
        try:
            table = pq.read_table(self.path(run_id) / "metrics.parquet")
        except FileNotFoundError:
            raise InputError(f"run '{run_id}' is incomplete: metrics.parquet is missing") from None
        except (pa.ArrowInvalid, OSError) as error:
            raise InputError(f"run '{run_id}' is corrupt: metrics.parquet unreadable ({error})") from None
        return {c: table.column(c).to_pylist() for c in ("step", "name", "value")}

    def series(self, run_id: str, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric of one run, in step order."""
        m = self.metrics(run_id)
        pairs = sorted((s, v) for s, n, v in zip(m["step"], m["name"], m["value"]) if n == name)
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def params(self, run_id: str) -> dict[str, torch.Tensor]:
        path = self.path(run_id) / "params.pt"
        if not path.is_file():
            raise InputError(f"run '{run_id}' has no saved parameters")
        return torch.load(path, weights_only=True)

    def query(self, sql: str):
        """Run SQL over all metrics as the view `metrics` (run_id, step, name, value); returns rows."""
        import duckdb

        ids = self.run_ids()
        connection = duckdb.connect()
        if ids:
            files = [str(self.path(i) / "metrics.parquet") for i in ids]
            connection.execute(f"CREATE VIEW metrics AS SELECT * FROM read_parquet({files!r})")
        else:
            connection.execute("CREATE VIEW metrics AS SELECT NULL::VARCHAR run_id, NULL::BIGINT step, "
                               "NULL::VARCHAR name, NULL::DOUBLE value WHERE false")
        return connection.execute(sql).fetchall()
