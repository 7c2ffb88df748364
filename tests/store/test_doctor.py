"""doctor: finds incomplete, corrupt, temporary and foreign entries; repair removes only lmech's leftovers."""

import json
import os
import subprocess
import sys
import time

import pytest

from lmech.errors import InputError
from lmech.store.doctor import doctor
from lmech.store.store import Store, _host_tag, _tmp_name
from tests.store.conftest import snapshot, write_run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _messy_store(tmp_path, outside):
    """A store holding one entry of every kind; returns (store, expected {name: kind})."""
    store = Store(tmp_path / "store")
    root = store.root
    write_run(store, "good")
    (store.path("good") / "notes.txt").write_text("mine")  # extra file in a complete run
    write_run(store, "corrupt")
    (store.path("corrupt") / "metrics.parquet").write_bytes(b"garbage")
    (root / "half").mkdir()
    (root / "half" / "spec.json").write_text("{}")  # a record of the earlier layout, or a hand-made one
    (root / "empty").mkdir()
    stale = root / f".tmp-{_dead_pid()}-{_host_tag()}-deadbeef-good"
    stale.mkdir()
    (stale / "spec.json").write_text("{}")
    busy = root / _tmp_name("good")  # this process is alive
    busy.mkdir()
    (root / ".tmp-abc-1234").mkdir()  # an unparseable (older) temporary name, changed 2 hours ago
    os.utime(root / ".tmp-abc-1234", (time.time() - 7200,) * 2)
    (root / ".tmp-recent").mkdir()  # unparseable and recent: maybe a live writer of an older lmech
    (root / ".tmp-file").write_text("x")
    (root / "notes.txt").write_text("user file")
    (root / "bad name" / "sub").mkdir(parents=True)
    write_run(Store(root / "atlas-fast-1"), "inner")  # a nested store
    (root / "data").mkdir()
    (root / "data" / "x.csv").write_text("1,2\n")  # a user's folder with a valid run id name
    os.symlink(outside, root / "linked")  # a symlink to a directory outside the store
    os.symlink(outside / "precious.txt", root / "file-link")
    expected = {"good/notes.txt": "foreign", "corrupt": "corrupt", "half": "incomplete", "empty": "incomplete",
                stale.name: "stale", busy.name: "busy", ".tmp-abc-1234": "stale", ".tmp-recent": "busy",
                ".tmp-file": "foreign", "notes.txt": "foreign", "bad name": "foreign", "atlas-fast-1": "foreign",
                "data": "foreign", "linked": "foreign", "file-link": "foreign"}
    return store, expected


def test_clean_store_is_ok(tmp_path):
    store = Store(tmp_path)
    write_run(store, "a")
    write_run(store, "b", params=False)
    report = doctor(tmp_path)
    assert report.ok and report.complete == ("a", "b") and report.findings == ()


def test_doctor_classifies_every_entry_and_changes_nothing_without_repair(tmp_path, outside):
    store, expected = _messy_store(tmp_path, outside)
    before = snapshot(tmp_path)
    report = doctor(store.root)
    assert {f.name: f.kind for f in report.findings} == expected
    assert report.complete == ("good",) and not report.ok and report.nested == ("atlas-fast-1", "bad name")
    assert all(f.reason and "\n" not in f.reason and not f.removed for f in report.findings)
    assert "no longer running" in next(f.reason for f in report.of("stale") if f.name.startswith(".tmp-") and
                                       "process" in f.reason)
    assert snapshot(tmp_path) == before
    json.dumps(report.to_json())


def test_repair_removes_only_leftovers_and_never_leaves_the_store(tmp_path, outside):
    store, expected = _messy_store(tmp_path, outside)
    outside_before = snapshot(outside)
    report = doctor(store.root, repair=True)
    removable = {name for name, kind in expected.items() if kind in ("incomplete", "corrupt", "stale")}
    assert {f.name for f in report.findings if f.removed} == removable and report.ok
    left = sorted(os.listdir(store.root))
    assert left == sorted({name.split("/")[0] for name in expected} - removable | {"good"})
    assert snapshot(outside) == outside_before and (tmp_path / "sibling.txt").read_text() == "next to the store"
    assert Store(store.root / "atlas-fast-1").has("inner") and (store.root / "data" / "x.csv").exists()
    assert store.run_ids() == ["good"] and store.verify("good", full=True) is None
    again = doctor(store.root, repair=True)  # idempotent: only what it never removes is left
    assert {f.kind for f in again.findings} <= {"foreign", "busy"} and again.ok


@pytest.mark.slow
def test_a_killed_writer_leaves_a_stale_temporary_that_doctor_removes(tmp_path):
    """A real SIGKILL in the middle of a write: no run appears; the .tmp- directory names the dead pid."""
    script = ("import sys, time, lmech.store.store as m\n"
              "real = m._write_bytes\n"
              "def slow(path, data):\n"
              "    real(path, data); print('wrote', flush=True); time.sleep(60)\n"
              "m._write_bytes = slow\n"
              "m.Store(sys.argv[1]).write('abc', {}, [(0, 'loss', 1.0)], {'status': 'completed'})\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "wrote"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(f".tmp-{child.pid}-") and leftover.endswith("-abc")
    assert Store(tmp_path).run_ids() == []
    report = doctor(tmp_path, repair=True)
    assert [(f.name, f.kind, f.removed) for f in report.findings] == [(leftover, "stale", True)]
    assert os.listdir(tmp_path) == []


def test_repair_puts_back_a_run_completed_by_a_concurrent_writer(tmp_path, monkeypatch):
    """Between doctor's check and its removal a writer installs a complete run: doctor keeps it."""
    import lmech.store.doctor as doctor_module

    store = Store(tmp_path)
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "spec.json").write_text("{}")
    real_rename = os.rename
    elsewhere = Store(tmp_path / "elsewhere")
    write_run(elsewhere)

    def rename_after_a_writer(src, dst):  # the writer wins the race just before doctor moves the entry
        if str(src).endswith("/abc") and not str(dst).endswith("/abc"):
            import shutil

            shutil.rmtree(src)
            real_rename(elsewhere.path("abc"), src)
        real_rename(src, dst)

    monkeypatch.setattr(doctor_module.os, "rename", rename_after_a_writer)
    report = doctor(tmp_path, repair=True)
    monkeypatch.undo()
    (finding,) = [f for f in report.findings if f.name == "abc"]
    assert not finding.removed and "kept" in finding.reason
    assert store.has("abc")


def test_missing_store_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no store"):
        doctor(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="no store"):
        doctor(tmp_path / "file")
