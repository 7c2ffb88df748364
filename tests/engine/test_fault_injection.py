"""Fault injection: SIGKILL a 200-run sweep at 20 seeded random points, for each executor.

The sweep: 200 tiny runs (an MLP of width 4..8 and depth 1..10 on digits, 30 steps, 4 seeds each),
grouped into 50 ensemble jobs of 4 runs, so kills land before training, inside a job and between
jobs. The kills are chained on one store (each restart resumes what the previous one left). Each
kill waits for a seeded random number n in 0..4 of new names in the store directory (a `.tmp-`
write directory or a finished run) and kills at once: in the middle of a job's writes. With n = 0
it kills after a seeded random 0.3..3 s from the start (on Ray, from the first
`ray::lmech_ensemble_job` task), or at the first new name if that comes first: in the imports or
the first job's training. Counting names, not seconds, bounds the progress per kill (at most ~4
runs) whatever the machine's speed, so 20 kills always land mid-sweep. After each kill it checks that

- no incomplete run looks complete: every non-hidden entry of the store directory passes
  `Store.has`, and every complete run also verifies with all its hashes;
- no worker survives: every process that inherited the sweep's environment tag (the CLI and its
  pool workers) is gone; on Ray, no task titled `ray::lmech_ensemble_job` is left;
- nothing more is written after the kill (the store's listing is still the same 0.5 s later).

The last restart runs to the end, and every run's metrics.parquet, params.pt and spec.json must
then be byte-identical to those of an uninterrupted sweep of the same spec.

Ray: one local cluster on loopback for the whole test (token authentication with a random token,
in the environment of the cluster and of every sweep), joined with `--ray-address`, because a
cluster per restart costs 5-10 s; its process group is killed at teardown.
"""

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lmech.store import Store

pytestmark = pytest.mark.slow

KILLS = 20
RUNS = 200
FILES = ("metrics.parquet", "params.pt", "spec.json")
SWEEP = ("steps: 30\nmodel: {width: 4, depth: 1}\noptimizer: {batch_size: 16}\nobserve: {loss: {every: 10}}\n"
         "sweep: {model.width: [4, 5, 6, 7, 8], model.depth: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], seed: [0, 1, 2, 3]}\n")
TAG = "LMECH_FAULT_TAG"


def _command(spec: Path, store_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lmech.cli", "sweep", str(spec), "--runs", str(store_dir), "--json", *extra]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "LMECH_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def sweep_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "sweep.yaml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, sweep_spec) -> Store:
    """The uninterrupted sweep, through the same CLI and environment as the killed ones."""
    store_dir = tmp_path_factory.mktemp("reference") / "runs"
    result = subprocess.run(_command(sweep_spec, store_dir), capture_output=True, text=True, timeout=900,
                            env=_env())
    assert result.returncode == 0, result.stderr
    store = Store(store_dir)
    assert len(store.run_ids()) == RUNS
    return store


def _listing(store_dir: Path) -> list[str]:
    try:
        return sorted(os.listdir(store_dir))
    except FileNotFoundError:
        return []


def _complete(store_dir: Path) -> int:
    return len(Store(store_dir).run_ids()) if store_dir.is_dir() else 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return False


def _processes() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _tagged(tag: str) -> list[int]:
    """Live processes whose environment holds TAG=tag: the sweep and everything it forked."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for pid in _processes():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _alive(pid):
            found.append(pid)
    return found


def _ray_tasks() -> list[int]:
    return [pid for pid in _processes() if "lmech_ensemble_job" in _cmdline(pid) and _alive(pid)]


def _no_process_left(tag: str, ray: bool) -> list[int]:
    deadline = time.time() + 60
    left = []
    while time.time() < deadline:
        left = _tagged(tag) + (_ray_tasks() if ray else [])
        if not left:
            return []
        time.sleep(0.1)
    return [(pid, _cmdline(pid)) for pid in left]


def _check_store(store_dir: Path) -> None:
    if not store_dir.is_dir():
        return
    store = Store(store_dir)
    for name in _listing(store_dir):
        if not name.startswith("."):
            assert store.has(name), f"{name} looks like a run but is incomplete: {store.verify(name)}"
            assert store.verify(name, full=True) is None, f"{name}: {store.verify(name, full=True)}"


def _wait_for_growth(process: subprocess.Popen, store_dir: Path, target: int, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None:
        if len([n for n in _listing(store_dir) if not n.startswith(".")]) >= target:
            return
        time.sleep(0.02)


def _wait_for_task(process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None and not _ray_tasks():
        time.sleep(0.05)


def _wait_for_names(process: subprocess.Popen, store_dir: Path, count: int, timeout_s: float) -> None:
    seen = set(_listing(store_dir))
    new: set[str] = set()
    deadline = time.time() + timeout_s
    while time.time() < deadline and process.poll() is None and len(new) < count:
        new |= set(_listing(store_dir)) - seen
        time.sleep(0.005)


def _chained_kills(sweep_spec: Path, store_dir: Path, extra: list[str], env: dict, seed: int,
                   ray: bool = False, kills: int = KILLS) -> list[int]:
    """Start, randomly kill and check `kills` times; return the complete-run count after each kill."""
    rng = random.Random(seed)
    counts = []
    for attempt in range(kills):
        tag = uuid.uuid4().hex
        before = _complete(store_dir)
        names = rng.randint(0, 4)  # 0: a seeded delay; else kill when that many new names have appeared
        delay = rng.uniform(0.3, 3.0)
        process = subprocess.Popen(_command(sweep_spec, store_dir, *extra), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**env, TAG: tag})
        if names == 0:  # in the imports, the first job's training, or its first write, whichever comes first
            if ray:
                _wait_for_task(process, 600)
            _wait_for_names(process, store_dir, 1, delay)
        else:  # in the middle of a job's writes: a .tmp- directory or a run has just appeared
            _wait_for_names(process, store_dir, names, 600)
        assert process.poll() is None, f"kill {attempt}: the sweep ended (rc {process.returncode}) before its kill"
        process.send_signal(signal.SIGKILL)
        process.wait()
        left = _no_process_left(tag, ray)
        assert not left, f"kill {attempt}: processes outlived the killed sweep: {left}"
        _check_store(store_dir)
        listing = _listing(store_dir)
        time.sleep(0.5)
        assert _listing(store_dir) == listing, f"kill {attempt}: the store changed after the kill"
        counts.append(_complete(store_dir))
        assert counts[-1] >= before, "a complete run disappeared"
    assert counts[-1] < RUNS, "the kills should all land mid-sweep"
    return counts


def _finish_and_compare(sweep_spec: Path, store_dir: Path, extra: list[str], env: dict, reference: Store) -> dict:
    done = _complete(store_dir)
    result = subprocess.run(_command(sweep_spec, store_dir, *extra), capture_output=True, text=True,
                            timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout)
    assert outcome["skipped"] == done and outcome["trained"] == RUNS - done, outcome
    store = Store(store_dir)
    assert store.run_ids() == reference.run_ids()
    assert [n for n in _listing(store_dir) if not n.startswith(".")] == reference.run_ids()
    for run_id in reference.run_ids():
        for name in FILES:
            assert (store.path(run_id) / name).read_bytes() == (reference.path(run_id) / name).read_bytes(), \
                f"{run_id}/{name} differs from the uninterrupted sweep"
    return outcome


def test_local_sweep_survives_20_kills(tmp_path, sweep_spec, reference):
    counts = _chained_kills(sweep_spec, tmp_path / "runs", [], _env(), seed=1)
    print(f"local: complete runs after each kill {counts}")
    _finish_and_compare(sweep_spec, tmp_path / "runs", [], _env(), reference)


def test_process_sweep_survives_20_kills(tmp_path, sweep_spec, reference):
    extra = ["--executor", "process", "--workers", "2"]
    counts = _chained_kills(sweep_spec, tmp_path / "runs", extra, _env(), seed=2)
    print(f"process: complete runs after each kill {counts}")
    _finish_and_compare(sweep_spec, tmp_path / "runs", extra, _env(), reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """(address, env) of a local Ray head on loopback with 2 CPUs, stopped (its process group killed) after."""
    pytest.importorskip("ray")
    port, token = _free_port(), secrets.token_hex(32)
    env = _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--num-cpus=2", "--node-ip-address=127.0.0.1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None, "the Ray head exited"
                time.sleep(0.3)
        yield f"127.0.0.1:{port}", env
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()


def test_ray_sweep_survives_20_kills(tmp_path, sweep_spec, reference, ray_cluster):
    address, env = ray_cluster
    extra = ["--executor", "ray", "--ray-address", address]
    counts = _chained_kills(sweep_spec, tmp_path / "runs", extra, env, seed=3, ray=True)
    print(f"ray: complete runs after each kill {counts}")
    _finish_and_compare(sweep_spec, tmp_path / "runs", extra, env, reference)
