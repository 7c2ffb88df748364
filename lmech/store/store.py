"""Run records on disk: one self-verifying directory per finished run, written atomically; DuckDB queries.

Ignores what a run means: specs and summaries are opaque JSON objects here, rows opaque
(step, name, value) triples.

Layout: <root>/<run_id>/{spec.json, metrics.parquet, params.pt (optional), summary.json}.

Run ids (`check_run_id`): 1 to 128 characters from A-Z a-z 0-9 . _ -, the first a letter
or a digit. Content hashes (hex) and Recorder names both fit; separators, control
characters, dots-only names and names starting with "." (the store's own temporaries)
do not. Every method taking a run id checks it before any path is built (`path`); an
invalid id raises InputError. Entries whose names are not valid ids are never runs.

Manifest: summary.json, written last, is the caller's summary plus three keys:
    "files": {"spec.json": {"bytes": 412, "sha256": "<64 hex>"}, "metrics.parquet": {...},
              "params.pt": {...}}  (every other file of the run)
    "non_finite": {"summary.json": [{"path": ["final", "loss"], "value": "nan"}], "spec.json": [...]}
    "summary_sha256": sha256 of the canonical JSON (sorted keys, no spaces, ASCII) of the
                      object without this key.
A run is complete when summary.json is a JSON object matching its summary_sha256 and
every listed file is a regular file (not a symlink) of the listed size and sha256. `has`
hashes files up to HASH_LIMIT bytes and checks only the size of larger ones; a reader
(`spec`, `metrics`, `params`, `query`) also hashes the file it reads; `verify(full=True)`
hashes all. Anything else is incomplete: not listed, not queried, retrained on resume
(`has` is false), and reading it raises InputError naming the reason in one line.

JSON never holds NaN or Infinity: a non-finite float is written as null and its place is
listed in summary.json's "non_finite" under the file's name (path = the keys, as JSON
writes them, and list indices from the top of that file). A null not listed was None.

Writes go to <root>/.tmp-<pid>-<host>-<random>-<run_id>/ (<host>: 8 hex digits of the
host name's sha256; files created O_EXCL, no symlink followed), then the directory is
renamed into place. Concurrent writers of one id end with one complete run. A killed
writer leaves only its .tmp- directory, which `lmech.store.doctor` removes once that
process is gone. No fsync: a run torn by a power loss fails verification and is
retrained. A full disk raises InputError ("disk full: ...") and leaves nothing behind.

Nothing read from a run directory is executed: JSON is parsed, tensors load with
weights_only=True, and DuckDB sees only verified metrics (Arrow tables), with its own
file access disabled.
"""

import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import stat
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lmech.errors import InputError

__all__ = ["Store", "METRIC_COLUMNS", "HASH_LIMIT", "check_run_id"]

METRIC_COLUMNS = ("run_id", "step", "name", "value")
HASH_LIMIT = 8 << 20  # bytes: `has` hashes files up to this size, checks larger ones by size
RUN_FILES = ("spec.json", "metrics.parquet", "params.pt", "summary.json")
_LISTED = RUN_FILES[:-1]
_REQUIRED = ("spec.json", "metrics.parquet")
_RESERVED = ("files", "non_finite", "summary_sha256")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TMP = re.compile(r"\.tmp-(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{8})-[0-9a-f]{8}-(?P<run_id>.*)", re.DOTALL)
_SHA = re.compile(r"[0-9a-f]{64}")
_SUMMARY_MAX = 64 << 20  # a larger summary.json is garbage, not read
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_METRICS_SCHEMA = pa.schema([("step", pa.int64()), ("name", pa.string()), ("value", pa.float64())])


def check_run_id(run_id: object) -> str:
    """Return `run_id` when it is a valid run id (see the module docstring); else raise InputError."""
    if isinstance(run_id, str) and _ID.fullmatch(run_id):
        return run_id
    shown = repr(run_id) if len(repr(run_id)) <= 60 else repr(run_id)[:57] + "..."
    raise InputError(f"invalid run id {shown}: use 1-128 characters from A-Z a-z 0-9 . _ -, "
                     "starting with a letter or a digit")


class Store:
    """A directory of run records (layout, manifest and guarantees in the module docstring).

    Failure modes: an invalid run id, an incomplete or corrupt run being read, a full or
    read-only disk, and a foreign entry (symlink, file, nested store, a folder holding
    files lmech does not write) under a run's name all raise InputError with one line.
    `has` trusts a manifest that is consistent with the files: a record forged together
    with its manifest passes, and its readers still fail with InputError.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        """The directory of one run (it may not exist); raises InputError for an invalid id."""
        return self.root / check_run_id(run_id)

    def verify(self, run_id: str, full: bool = False) -> str | None:
        """None when the run is complete, else why not (one line). full: hash every file."""
        try:
            _inspect(self.path(run_id), full=full)
        except _Absent:
            return "not in the store"
        except _Incomplete as why:
            return str(why)
        return None

    def has(self, run_id: str) -> bool:
        """True when the run finished and its record is complete (`verify` finds nothing)."""
        return self.verify(run_id) is None

    def run_ids(self) -> list[str]:
        """Ids of complete runs, sorted."""
        return [run_id for run_id in _candidates(self.root) if self.has(run_id)]

    def write(self, run_id: str, spec: dict, rows: list[tuple[int, str, float]], summary: dict,
              params: dict[str, torch.Tensor] | None = None) -> Path:
        """Write one run atomically and return its directory; a complete record of the same id is kept.

        Raises InputError for an invalid id, a summary using a reserved key, a full disk or
        an unwritable store, and when <root>/<run_id> holds something lmech did not write.
        """
        final = self.path(run_id)
        clash = [key for key in _RESERVED if key in summary]
        if clash:
            raise InputError(f"summary of run '{run_id}' uses the store's reserved keys {clash}")
        if self.has(run_id):
            return final
        blobs, non_finite = {}, {}
        spec_clean = _finite(spec, (), non_finite.setdefault("spec.json", []))
        blobs["spec.json"] = json.dumps(spec_clean, indent=2, sort_keys=True, allow_nan=False).encode()
        blobs["metrics.parquet"] = _parquet_bytes(run_id, rows)
        if params is not None:
            buffer = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in params.items()}, buffer)
            blobs["params.pt"] = buffer.getvalue()
        record = _finite(summary, (), non_finite.setdefault("summary.json", []))
        record["files"] = {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                           for name, data in blobs.items()}
        record["non_finite"] = {name: found for name, found in non_finite.items() if found}
        record = json.loads(json.dumps(record, allow_nan=False))  # the form a reader will see
        record["summary_sha256"] = hashlib.sha256(_canonical(record)).hexdigest()
        blobs["summary.json"] = json.dumps(record, indent=2, sort_keys=True, allow_nan=False).encode()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / _tmp_name(run_id)
            tmp.mkdir()
            try:
                for name, data in blobs.items():  # summary.json last
                    _write_bytes(tmp / name, data)
                self._install(run_id, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error):
                raise InputError(f"disk full: run {run_id} was not written ({error.strerror or error}; "
                                 f"store {self.root})") from None
            if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
                raise InputError(f"cannot write run {run_id} in {self.root}: {error.strerror}") from None
            raise
        return final

    def _install(self, run_id: str, tmp: Path) -> None:
        """Rename the finished `tmp` into place, or drop it when another writer got there first."""
        final = self.root / run_id
        for _ in range(100):  # each round another process changed <root>/<run_id>
            try:
                os.rename(tmp, final)
                return
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise
            if self.has(run_id):
                shutil.rmtree(tmp)
                return
            foreign = _foreign_reason(final)
            if foreign is not None:
                raise InputError(f"cannot write run '{run_id}': {final} exists and {foreign}")
            aside = self.root / _tmp_name(run_id)  # an incomplete leftover: move it away, then delete
            try:
                os.rename(final, aside)
            except FileNotFoundError:
                continue
            shutil.rmtree(aside, ignore_errors=True)
        raise RuntimeError(f"run '{run_id}': {final} kept changing under concurrent writers")

    def _read(self, run_id: str, name: str | None = None) -> tuple[dict, bytes | None]:
        """(summary, verified bytes of `name` or None if the run has no such file); InputError if incomplete."""
        try:
            summary, data = _inspect(self.path(run_id), read=(name,) if name else ())
        except _Absent:
            raise InputError(f"no run '{run_id}' in {self.root}") from None
        except _Incomplete as why:
            state = "corrupt" if isinstance(why, _Corrupt) else "incomplete"
            raise InputError(f"run '{run_id}' is {state}: {why}") from None
        return summary, data.get(name)

    def _object(self, run_id: str, name: str) -> dict:
        summary, data = self._read(run_id, name)
        if name == "summary.json":
            return summary
        try:
            value = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise InputError(f"run '{run_id}' is corrupt: {name} is not a JSON object")
        return value

    def spec(self, run_id: str) -> dict:
        """spec.json of a complete run (non-finite floats read as None, see the module docstring)."""
        return self._object(run_id, "spec.json")

    def summary(self, run_id: str) -> dict:
        """summary.json of a complete run, with its "files" and "non_finite" keys."""
        return self._object(run_id, "summary.json")

    def metrics(self, run_id: str) -> dict[str, list]:
        """Columns step, name, value of one run."""
        _, data = self._read(run_id, "metrics.parquet")
        try:
            table = _metrics_table(data)
        except (pa.ArrowException, KeyError, ValueError, OSError) as error:
            raise InputError(f"run '{run_id}' is corrupt: metrics.parquet unreadable "
                             f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
        return {c: table.column(c).to_pylist() for c in ("step", "name", "value")}

    def series(self, run_id: str, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric of one run, in step order."""
        m = self.metrics(run_id)
        pairs = sorted((s, v) for s, n, v in zip(m["step"], m["name"], m["value"]) if n == name)
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def params(self, run_id: str) -> dict[str, torch.Tensor]:
        """The saved parameters of a complete run (loaded with weights_only=True)."""
        _, data = self._read(run_id, "params.pt")
        if data is None:
            raise InputError(f"run '{run_id}' has no saved parameters")
        try:
            return torch.load(io.BytesIO(data), weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt file
            raise InputError(f"run '{run_id}' is corrupt: params.pt unreadable ({type(error).__name__})") from None

    def query(self, sql: str):
        """Run SQL over the complete runs: the table `metrics` (run_id, step, name, value) and the
        table `runs`, one row per run (see `_run_row`), so metrics join the hyperparameters that
        produced them: `select optimizer_lr, avg(value) from metrics join runs using (run_id) ...`.

        Returns the rows. Incomplete runs and entries that are not valid run ids are skipped;
        the run_id column is the run's directory name. The SQL cannot touch files.
        """
        return self.queries([sql])[0]

    def queries(self, statements: list[str]) -> list[list[tuple]]:
        """`query` for several statements over one read of the store: each run is read and
        verified once, and every statement sees the same snapshot. Returns one row list per
        statement, in order."""
        import duckdb

        tables, rows = [], []
        for run_id in _candidates(self.root):
            try:
                summary, data = _inspect(self.root / run_id, read=("metrics.parquet", "spec.json"))
                table = _metrics_table(data["metrics.parquet"])
                spec = json.loads(data["spec.json"])
            except (_Absent, _Incomplete, pa.ArrowException, KeyError, ValueError, OSError):
                continue
            ids = pa.DictionaryArray.from_arrays(pa.nulls(table.num_rows, pa.int32()).fill_null(0), pa.array([run_id]))
            tables.append(table.add_column(0, pa.field("run_id", ids.type), ids))
            rows.append(_run_row(run_id, spec, summary))
        if not tables:
            empty = pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], pa.string()))
            tables.append(_METRICS_SCHEMA.empty_table().add_column(0, pa.field("run_id", empty.type), empty))
        connection = duckdb.connect(config={"enable_external_access": False})
        try:
            connection.register("metrics", pa.concat_tables(tables))
            connection.register("runs", _runs_table(rows))
            return [connection.execute(sql).fetchall() for sql in statements]
        finally:
            connection.close()


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a_b": 1}; lists as JSON text. Column names: letters, digits, underscores."""
    out = {}
    for key, value in tree.items():
        name = "".join(c if c.isalnum() else "_" for c in f"{prefix}{key}")
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = json.dumps(value) if isinstance(value, list) else value
    return out


def _run_row(run_id: str, spec: dict, summary: dict) -> dict:
    """One row of the `runs` table: run_id, sweep, status, created, lmech_version, seconds,
    every spec field flattened (optimizer_lr, model_width, ...) and every final metric
    (final_loss_train, ...)."""
    row = {"run_id": run_id, "sweep": summary.get("sweep"), "status": summary.get("status"),
           "created": summary.get("created"), "seconds": summary.get("seconds"),
           "lmech_version": (summary.get("versions") or {}).get("lmech")}
    row.update(_flatten({k: v for k, v in spec.items() if k != "observe"}))
    row.update(_flatten(summary.get("final") or {}, "final_"))
    return row


def _runs_table(rows: list[dict]) -> pa.Table:
    """Rows with different fields (model families differ) as one table: a missing field is null;
    a column holding numbers only is float64, any other is text."""
    names = list(dict.fromkeys(["run_id", "sweep", "status", "created", "seconds", "lmech_version",
                                *(n for row in rows for n in row)]))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
        columns[name] = (pa.array([None if v is None else float(v) for v in values], pa.float64()) if numeric and name
                         not in ("run_id", "sweep", "status", "created", "lmech_version")
                         else pa.array([None if v is None else str(v) for v in values], pa.string()))
    return pa.table(columns)


class _Absent(Exception):
    """No entry of that name."""


class _Incomplete(Exception):
    """The entry is not a complete run record: a piece is missing. The message says which."""


class _Corrupt(_Incomplete):
    """The entry is not a complete run record: a piece does not match its manifest or is garbled."""


def _candidates(root: Path) -> list[str]:
    """Names of the entries of `root` that are valid run ids, sorted (no check of their contents)."""
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in names if _ID.fullmatch(name))


def _inspect(directory: Path, read: tuple[str, ...] = (), full: bool = False) -> tuple[dict, dict[str, bytes]]:
    """Verify one run directory against its manifest; return (summary, {name: verified bytes} for `read`).

    Raises _Absent, _Incomplete or _Corrupt. Opens nothing through a symlink.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
    except FileNotFoundError:
        raise _Absent(str(directory)) from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _Corrupt("it is a symbolic link or not a directory") from None
        raise _Corrupt(f"it cannot be opened ({error.strerror})") from None
    try:
        raw = _read_file(fd, "summary.json", _SUMMARY_MAX)
        summary = _parse_summary(raw)
        out = {}
        for name, entry in summary["files"].items():
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise _Incomplete(f"{name} is missing") from None
            if not stat.S_ISREG(info.st_mode):
                raise _Corrupt(f"{name} is not a regular file")
            if info.st_size != entry["bytes"]:
                raise _Corrupt(f"{name} has {info.st_size} bytes, the manifest says {entry['bytes']}")
            if full or name in read or info.st_size <= HASH_LIMIT:
                data = _read_file(fd, name, entry["bytes"])
                if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise _Corrupt(f"{name} does not match its sha256 in the manifest")
                if name in read:
                    out[name] = data
        return summary, out
    finally:
        os.close(fd)


def _read_file(dir_fd: int, name: str, limit: int) -> bytes:
    """All bytes of the regular file `name` inside `dir_fd` (at most limit + 1 are read)."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Incomplete(f"{name} is missing") from None
    except OSError as error:
        raise _Corrupt(f"{name} cannot be opened ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Corrupt(f"{name} is not a regular file")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as error:
        raise _Corrupt(f"{name} cannot be read ({error.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _Corrupt(f"{name} is larger than {limit} bytes")
    return data


def _parse_summary(raw: bytes) -> dict:
    """summary.json's object with summary_sha256 checked and removed, and a well-formed manifest."""
    try:
        summary = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Corrupt("summary.json is not valid JSON") from None
    if not isinstance(summary, dict):
        raise _Corrupt("summary.json is not a JSON object")
    claimed = summary.pop("summary_sha256", None)
    if not isinstance(claimed, str) or not isinstance(summary.get("files"), dict):
        raise _Corrupt("summary.json has no manifest (written by an older lmech, or not by lmech)")
    try:
        actual = hashlib.sha256(_canonical(summary)).hexdigest()
    except (ValueError, TypeError, RecursionError):
        actual = None
    if actual != claimed:
        raise _Corrupt("summary.json does not match its summary_sha256")
    files = summary["files"]
    for name in _REQUIRED:
        if name not in files:
            raise _Corrupt(f"the manifest does not list {name}")
    for name, entry in files.items():
        if (name not in _LISTED or not isinstance(entry, dict) or set(entry) != {"bytes", "sha256"}
                or type(entry["bytes"]) is not int or entry["bytes"] < 0
                or not isinstance(entry["sha256"], str) or not _SHA.fullmatch(entry["sha256"])):
            raise _Corrupt(f"the manifest entry {name!r} is malformed")
    return summary


def _foreign_reason(directory: Path) -> str | None:
    """Why `directory` is not something lmech wrote (then it is never deleted), or None."""
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    try:
        with os.scandir(directory) as found:
            entries = sorted(found, key=lambda e: e.name)
    except FileNotFoundError:  # removed or renamed by a concurrent writer since lstat: absent now
        return None
    except OSError as error:
        return f"cannot be listed ({error.strerror})"
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            return f"holds the directory {entry.name!r} (a nested store?)"
        if entry.name not in RUN_FILES or not entry.is_file(follow_symlinks=False):
            return f"holds {entry.name!r}, which lmech does not write"
    return None


def _tmp_name(run_id: str) -> str:
    return f".tmp-{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex[:8]}-{run_id}"


def _host_tag() -> str:
    """8 hex digits naming this machine in temporary directory names (sha256 of the host name)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _write_bytes(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist; no symlink followed) holding exactly `data`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _parquet_bytes(run_id: str, rows: list[tuple[int, str, float]]) -> bytes:
    table = pa.table({
        "run_id": pa.array([run_id] * len(rows), pa.string()),
        "step": pa.array([r[0] for r in rows], pa.int64()),
        "name": pa.array([r[1] for r in rows], pa.string()),
        "value": pa.array([r[2] for r in rows], pa.float64()),
    })
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _metrics_table(data: bytes) -> pa.Table:
    """Columns step, name, value of a metrics.parquet's bytes, cast to the store's types."""
    table = pq.ParquetFile(pa.BufferReader(data)).read(columns=["step", "name", "value"], use_threads=False)
    return table.cast(_METRICS_SCHEMA)


def _finite(value, path: tuple, found: list):
    """A copy of a JSON-able value with non-finite floats replaced by None; their places go to `found`."""
    if isinstance(value, float) and not math.isfinite(value):
        found.append({"path": list(path), "value": "nan" if value != value else ("inf" if value > 0 else "-inf")})
        return None
    if isinstance(value, dict):
        return {k: _finite(v, (*path, k if isinstance(k, str) else json.dumps(k)), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, (*path, i), found) for i, v in enumerate(value)]
    return value


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")
