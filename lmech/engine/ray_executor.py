"""The Ray adapter: the same grouped ensemble jobs as the local executor, run as Ray tasks.

One job: send each ensemble job to a Ray cluster as one task that calls `run_job` (which writes
the job's runs to the store atomically and skips runs already there), and collect the outcomes.
Nothing Ray-specific lives anywhere else in the engine.

- Cluster: `address=None` starts a local Ray head on the loopback interface for this sweep, in a
  process session of its own watched by a small guard process, and stops it afterwards; "auto" or
  "HOST:PORT" joins a running cluster (`ray start --head`).
- Store: every node must see the store at the same path (a local disk on one machine, or a shared
  POSIX filesystem such as NFS or Lustre mounted at the same path). Object stores (S3) do not work:
  the store's atomicity rests on rename within one filesystem.
- Failures: a task whose worker dies (killed, out of memory, node lost) is retried up to
  `MAX_RETRIES` times by Ray; a retried job rewrites only the runs not yet in the store, and a run
  is visible only once complete (`Store.write`), so nothing half-written is ever seen. An
  exception raised by the job itself (bad input) is not retried: it is raised here.
- Kills: when the sweep process dies, Ray ends the tasks of its job (the driver is gone), so no
  worker keeps writing. A local cluster started here goes with it: its guard sees the sweep die
  (SIGKILL included) and kills the cluster's whole session (Ray started in the sweep's own process
  leaves its RuntimeEnvAgent and DashboardAgent behind after a SIGKILL; this does not).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from lmech.errors import InputError
from lmech.spec import RunSpec

__all__ = ["run_on_ray", "MAX_RETRIES"]

MAX_RETRIES = 3
TASK_NAME = "lmech_ensemble_job"  # the Ray task's name (its worker's process title is ray::<name>)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'lmech[ray]'") from None
    return ray


# The guard: start `ray start --head --block ...` in this (new) session, then wait; when the sweep
# (argv[1]) dies or the head exits, kill the whole session (the head's processes included).
_GUARD = """
import os, signal, subprocess, sys, time
sweep = int(sys.argv[1])
head = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while head.poll() is None:
    try:
        os.kill(sweep, 0)
    except ProcessLookupError:
        break
    if os.getppid() != sweep:
        break
    time.sleep(0.2)
os.killpg(0, signal.SIGKILL)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_local_cluster(workers: int) -> tuple[subprocess.Popen, str, str]:
    """(guard process, address, token) of a fresh local Ray head with `workers` CPUs on 127.0.0.1.

    The cluster keeps Ray's token authentication, with a random token for this sweep only, passed
    in the environment (nothing is written to ~/.ray)."""
    import secrets

    port, token = _free_port(), secrets.token_hex(32)
    head = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
            f"--num-cpus={workers}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
            "--disable-usage-stats"]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    guard = subprocess.Popen([sys.executable, "-c", _GUARD, str(os.getpid()), *head], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return guard, f"127.0.0.1:{port}", token


def _stop_local_cluster(guard: subprocess.Popen) -> None:
    try:
        os.killpg(guard.pid, signal.SIGKILL)  # the guard leads its session's process group
    except ProcessLookupError:
        pass
    guard.wait()


def _reachable(address: str, timeout_s: float = 3.0) -> bool:
    """True unless `address` is HOST:PORT and nothing accepts a TCP connection there ("auto" is
    left to Ray). Ray itself retries an unreachable address for minutes before it exits."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def _connect(ray, address: str, deadline_s: float, guard: subprocess.Popen | None) -> None:
    options = {"address": address, "log_to_driver": False, "configure_logging": False}
    end = time.monotonic() + deadline_s
    while True:
        if guard is None and not _reachable(address):
            raise InputError(f"cannot reach the Ray cluster at {address}: nothing listens there "
                             "(start one with `ray start --head`, or leave out --ray-address for a local one)")
        try:
            ray.init(**options)
            return
        except (ConnectionError, RuntimeError, ValueError, SystemExit) as error:
            if guard is None or time.monotonic() > end or guard.poll() is not None:
                raise InputError(f"cannot reach the Ray cluster at {address}: "
                                 f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
            time.sleep(0.5)


def _use_token(token: str) -> None:
    """Make this process (the driver) present `token` to the cluster. Ray reads the token once and
    caches it, so the cache is dropped (ray._raylet's loader; the reset Ray's own tests use)."""
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # a Ray without token authentication
        pass


def _job_task(job: list[dict], store_root: str, sweep: str | None) -> list[tuple[str, bool]]:
    """One ensemble job on a Ray worker (specs travel as JSON-ready dicts, validated again here)."""
    import torch

    from lmech.engine.execute import run_job

    torch.set_num_threads(int(os.environ.get("LMECH_THREADS", "1")))
    return run_job([RunSpec.model_validate(spec) for spec in job], store_root, sweep=sweep)


def run_on_ray(jobs: list[list[RunSpec]], store_root: str, sweep: str | None = None, address: str | None = None,
               workers: int = 2, progress: Callable[[int], None] | None = None) -> list[tuple[str, bool]]:
    """Run every job as a Ray task; progress(steps done) is called as jobs finish.

    address: None starts a local cluster with `workers` CPUs on 127.0.0.1; "auto" / "HOST:PORT" joins
    one. Returns the (run_id, diverged) pairs of the runs written.
    """
    ray = _import_ray()
    connected_here = not ray.is_initialized()
    guard = None
    if connected_here:
        if address is None:
            guard, address, token = _start_local_cluster(workers)
            _use_token(token)
        try:
            _connect(ray, address, 120.0, guard)
        except BaseException:
            if guard is not None:
                _stop_local_cluster(guard)
            raise
    try:
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_job_task).options(
            name=TASK_NAME)
        pending = {task.remote([s.model_dump(mode="json") for s in job], os.path.abspath(store_root), sweep): job
                   for job in jobs}
        outcomes: list[tuple[str, bool]] = []
        done_steps = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    outcomes += [tuple(pair) for pair in ray.get(ref)]
                except ray.exceptions.RayTaskError as error:
                    cause = error.cause if getattr(error, "cause", None) is not None else error
                    raise cause from None
                done_steps += job[0].steps
                if progress:
                    progress(done_steps)
        return outcomes
    finally:
        if connected_here:
            ray.shutdown()
        if guard is not None:
            _stop_local_cluster(guard)
