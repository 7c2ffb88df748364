"""Examine one store: complete runs, leftovers lmech can remove, and entries it did not write.

Ignores nested stores (a directory holding directories is reported as foreign, never
entered: the CLI examines each store on its own) and what runs contain beyond their
manifests (see `lmech.store.store`).

Kinds of findings:
    incomplete  a run directory missing summary.json or a file its manifest lists
    corrupt     a run directory whose summary.json or a file does not match the manifest
    stale       a .tmp- directory whose writer is gone (its pid is not running on this
                host; for another host's or an unparseable name, older than stale_after_s)
    busy        a .tmp- directory of a writer still running: kept
    foreign     anything else: files, symlinks, names that are not run ids, nested stores,
                extra files inside runs, and incomplete directories holding files lmech
                does not write. Never removed.
With repair=True, incomplete, corrupt and stale entries are removed. Only entries directly
inside the store root are touched; symlinks are never followed (rmtree removes a link,
not its target). An incomplete run is first renamed to a .tmp- name and checked again, so
a complete record that a concurrent writer installed meanwhile is put back, not deleted.
"""

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from lmech.errors import InputError
from lmech.store.store import _ID, _TMP, _Absent, _Corrupt, _foreign_reason, _host_tag, _Incomplete, _inspect, _tmp_name

__all__ = ["doctor", "DoctorReport", "Finding"]

REMOVABLE = ("incomplete", "corrupt", "stale")


@dataclass(frozen=True)
class Finding:
    """One entry of the store that is not a clean complete run.

    name: the path relative to the store root ("abc", ".tmp-...", "abc/notes.txt").
    kind: incomplete | corrupt | stale | busy | foreign (see the module docstring).
    reason: one line.
    removed: whether repair removed it.
    """

    name: str
    kind: str
    reason: str
    removed: bool = False


@dataclass(frozen=True)
class DoctorReport:
    """What `doctor` found in one store; `ok` when nothing removable is left."""

    root: str
    complete: tuple[str, ...]
    findings: tuple[Finding, ...]
    nested: tuple[str, ...] = ()  # foreign entries that hold directories: stores to examine on their own

    def of(self, kind: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind == kind)

    @property
    def ok(self) -> bool:
        return not any(f.kind in REMOVABLE and not f.removed for f in self.findings)

    def to_json(self) -> dict:
        return {"root": self.root, "ok": self.ok, "complete": list(self.complete), "nested": list(self.nested),
                "findings": [{"name": f.name, "kind": f.kind, "reason": f.reason, "removed": f.removed}
                             for f in self.findings]}


def doctor(store_root: str | os.PathLike, repair: bool = False, *, stale_after_s: float = 3600.0) -> DoctorReport:
    """Check every entry of the store at `store_root`; with repair, remove the removable ones.

    Cost: every file of every run is read and hashed (sha256, about 1.5 GB/s).

    Raises:
        InputError: store_root is not a directory.
    """
    root = Path(store_root)
    if not root.is_dir():
        raise InputError(f"no store at {root} (not a directory)")
    complete, findings = [], []
    for name in sorted(os.listdir(root)):
        path = root / name
        if name.startswith(".tmp-"):
            findings.append(_temporary(path, repair, stale_after_s))
        elif not _ID.fullmatch(name):
            findings.append(Finding(name, "foreign", "not a valid run id: not a run, left alone"))
        else:
            try:
                summary, _ = _inspect(path, full=True)
            except _Absent:
                continue
            except _Incomplete as why:
                findings.append(_broken(path, why, repair))
                continue
            complete.append(name)
            listed = set(summary["files"]) | {"summary.json"}
            findings += [Finding(f"{name}/{extra}", "foreign", "a file lmech does not write, inside a complete run")
                         for extra in sorted(os.listdir(path)) if extra not in listed]
    nested = tuple(f.name for f in findings
                   if f.kind == "foreign" and "/" not in f.name and _holds_directory(root / f.name))
    return DoctorReport(str(root), tuple(complete), tuple(findings), nested)


def _temporary(path: Path, repair: bool, stale_after_s: float) -> Finding:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return Finding(path.name, "busy", "vanished while examined (its writer finished)")
    if not stat.S_ISDIR(info.st_mode):
        return Finding(path.name, "foreign", "a temporary name on something that is not a directory")
    match = _TMP.fullmatch(path.name)
    if match and match["host"] == _host_tag() and os.name == "posix":
        pid = int(match["pid"])
        alive = _running(pid)
        reason = f"written by process {pid}, {'still running' if alive else 'no longer running'}"
    else:
        age = time.time() - info.st_mtime
        alive = age < stale_after_s
        origin = "from another host" if match else "no writer pid in its name"
        reason = f"{origin}; last changed {age:.0f} s ago (stale after {stale_after_s:.0f} s)"
    if alive:
        return Finding(path.name, "busy", reason)
    if repair:
        shutil.rmtree(path, ignore_errors=True)
    return Finding(path.name, "stale", reason, removed=repair and not os.path.lexists(path))


def _broken(path: Path, why: _Incomplete, repair: bool) -> Finding:
    foreign = _foreign_reason(path)
    if foreign is not None:
        return Finding(path.name, "foreign", f"not a complete run ({why}) and {foreign}: left alone")
    kind = "corrupt" if isinstance(why, _Corrupt) else "incomplete"
    if not repair:
        return Finding(path.name, kind, str(why))
    aside = path.parent / _tmp_name(path.name)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return Finding(path.name, kind, f"{why}; gone before repair")
    try:
        _inspect(aside, full=True)
    except (_Absent, _Incomplete):
        shutil.rmtree(aside, ignore_errors=True)
        return Finding(path.name, kind, str(why), removed=not os.path.lexists(aside))
    try:  # a concurrent writer installed a complete record meanwhile: put it back
        os.rename(aside, path)
    except OSError:
        shutil.rmtree(aside, ignore_errors=True)  # a newer complete record is in place already
    return Finding(path.name, kind, f"{why}; replaced by a complete record during repair, kept")


def _holds_directory(path: Path) -> bool:
    """Whether `path` is a real directory with a real directory inside (symlinks not followed)."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        with os.scandir(path) as entries:
            return any(entry.is_dir(follow_symlinks=False) for entry in entries)
    except OSError:
        return False


def _running(pid: int) -> bool:
    """Whether process `pid` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

