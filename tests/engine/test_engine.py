import os
import signal
import subprocess
import sys
import time

import pytest

from lmech.engine import execute, plan_jobs
from lmech.spec import SweepSpec, expand_sweep
from lmech.store import Store

SMALL = {"model": {"width": 8, "depth": 1}, "steps": 5, "observe": {"loss": {"every": 5}}}


def test_sweep_groups_scalars_into_one_ensemble(tmp_path):
    runs = expand_sweep(SweepSpec(**SMALL, sweep={"optimizer.lr": [0.1, 0.2], "seed": [0, 1, 2],
                                                  "model.width": [8, 16]}))
    jobs, skipped = plan_jobs(runs, Store(tmp_path))
    assert skipped == 0 and sorted(len(j) for j in jobs) == [6, 6]  # one job per width


def test_rerun_skips_finished_runs(tmp_path):
    runs = expand_sweep(SweepSpec(**SMALL, sweep={"seed": [0, 1]}))
    store = Store(tmp_path)
    first = execute(runs, store)
    again = execute(runs, store)
    assert (first.trained, first.skipped) == (2, 0)
    assert (again.trained, again.skipped) == (0, 2)
    extended = execute(expand_sweep(SweepSpec(**SMALL, sweep={"seed": [0, 1, 2]})), store)
    assert (extended.trained, extended.skipped) == (1, 2)


def test_process_executor_writes_the_same_records(tmp_path):
    runs = expand_sweep(SweepSpec(**SMALL, sweep={"model.width": [4, 8, 12]}))
    local = execute(runs, Store(tmp_path / "a"))
    pooled = execute(runs, Store(tmp_path / "b"), executor="process", workers=2)
    assert local.run_ids == pooled.run_ids
    for run_id in local.run_ids:
        series = Store(tmp_path / "a").series(run_id, "loss/train")
        assert series[0] and series == Store(tmp_path / "b").series(run_id, "loss/train")


@pytest.mark.slow
def test_killed_sweep_leaves_only_complete_runs_and_resumes(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("steps: 150\nmodel: {width: 32}\nobserve: {loss: {every: 50}}\n"
                    "sweep: {model.depth: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
    store_dir = tmp_path / "runs"
    command = [sys.executable, "-m", "lmech.cli", "sweep", str(spec), "--runs", str(store_dir), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(Store(store_dir).run_ids()) < 1:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    store = Store(store_dir)
    finished = store.run_ids()
    assert 1 <= len(finished) < 8, "the kill should land mid-sweep"
    for entry in store_dir.iterdir():
        if not entry.name.startswith("."):
            assert store.has(entry.name), f"{entry.name} looks like a run but is incomplete"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "LMECH_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    import json

    outcome = json.loads(result.stdout)
    assert outcome["skipped"] == len(finished) and outcome["trained"] == 8 - len(finished)


@pytest.mark.slow
def test_killed_process_sweep_leaves_no_worker_alive(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("steps: 400\nmodel: {width: 32}\nobserve: {loss: {every: 100}}\n"
                    "sweep: {model.depth: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
    store_dir = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "lmech.cli", "sweep", str(spec), "--runs", str(store_dir),
                                "--executor", "process", "--workers", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_children(process.pid)) < 2:
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "the pool's workers should be running"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the killed sweep"
    written = len(Store(store_dir).run_ids())
    time.sleep(1.0)
    assert len(Store(store_dir).run_ids()) == written  # nothing more is written after the kill


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return False
