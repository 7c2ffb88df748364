"""`--executor ray` on a local cluster on loopback: the same records as the local executor, byte for
byte; a cluster that cannot be reached is one line; a killed sweep leaves no Ray process behind."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lmech.engine import execute
from lmech.errors import InputError
from lmech.spec import SweepSpec, expand_sweep
from lmech.store import Store

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SMALL = {"model": {"width": 8, "depth": 1}, "steps": 5, "observe": {"loss": {"every": 5}}}


def _files(store: Store, run_id: str) -> dict[str, bytes]:
    return {name: (store.path(run_id) / name).read_bytes() for name in ("metrics.parquet", "params.pt", "spec.json")}


TAG = "LMECH_TEST_RAY_TAG"  # set in a test's environment; every process it starts inherits it


def _ray_processes(tag: str) -> list[int]:
    """Live Ray processes (titles ray::..., raylet, gcs_server, `ray ... start --head`) that carry
    TAG=tag in their environment: this test's cluster, not another test's running beside it."""
    found, marker = [], f"{TAG}={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if state != "Z" and marker in environ and ("ray::" in cmdline or "raylet" in cmdline
                                                   or "gcs_server" in cmdline or "ray.scripts.scripts start" in cmdline):
            found.append(int(entry.name))
    return found


def test_ray_writes_the_same_records_as_local(tmp_path, monkeypatch):
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG, tag)
    runs = expand_sweep(SweepSpec(**SMALL, sweep={"model.width": [4, 8, 12], "seed": [0, 1]}))
    on_ray = execute(runs, Store(tmp_path / "ray"), executor="ray", workers=2)
    local = execute(runs, Store(tmp_path / "local"))
    assert on_ray.trained == 6 and on_ray.run_ids == local.run_ids
    for run_id in local.run_ids:
        assert _files(Store(tmp_path / "ray"), run_id) == _files(Store(tmp_path / "local"), run_id)
    again = execute(runs, Store(tmp_path / "ray"), executor="ray", workers=2)
    assert (again.trained, again.skipped) == (0, 6)
    deadline = time.time() + 20
    while time.time() < deadline and _ray_processes(tag):
        time.sleep(0.2)
    assert not _ray_processes(tag)  # the local cluster is stopped with the sweep


def test_an_unreachable_cluster_is_one_line(tmp_path):
    runs = expand_sweep(SweepSpec(**SMALL, sweep={"seed": [0, 1]}))
    with pytest.raises(InputError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        execute(runs, Store(tmp_path), executor="ray", ray_address="127.0.0.1:9")


def test_killed_ray_sweep_leaves_no_ray_process_and_writes_nothing_more(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("steps: 300\nmodel: {width: 32}\nobserve: {loss: {every: 100}}\n"
                    "sweep: {model.depth: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
    store_dir = tmp_path / "runs"
    tag = uuid.uuid4().hex
    process = subprocess.Popen([sys.executable, "-m", "lmech.cli", "sweep", str(spec), "--runs", str(store_dir),
                                "--executor", "ray", "--workers", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "LMECH_THREADS": "1", TAG: tag})
    deadline = time.time() + 240
    while time.time() < deadline and not any("lmech_ensemble_job" in _title(pid) for pid in _ray_processes(tag)):
        time.sleep(0.2)
    assert _ray_processes(tag), "the sweep's Ray tasks should be running"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _ray_processes(tag):
        time.sleep(0.2)
    assert not _ray_processes(tag), "a Ray process outlived the killed sweep"
    store = Store(store_dir)
    written = len(store.run_ids())
    for entry in store_dir.iterdir() if store_dir.is_dir() else []:
        if not entry.name.startswith("."):
            assert store.has(entry.name), f"{entry.name} looks like a run but is incomplete"
    time.sleep(1.0)
    assert len(Store(store_dir).run_ids()) == written


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
