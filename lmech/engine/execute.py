"""Execute ensemble jobs and write each finished run to the store.

Executors: "local" (in this process), "process" (a pool of worker processes, one
ensemble job each) and "ray" (one Ray task per job, `ray_executor.py`). All write the
same store layout; a killed sweep loses at most the jobs in flight, and rerunning skips
what finished.
"""

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch

import lmech
from lmech.engine.plan import plan_jobs
from lmech.observables import make_observer, plan_observations
from lmech.spec import RunSpec
from lmech.store import Store
from lmech.train import train_ensemble

__all__ = ["ExecutionReport", "execute", "run_job", "validate_observe"]


@dataclass(frozen=True)
class ExecutionReport:
    run_ids: list[str]
    trained: int
    skipped: int
    diverged: int
    seconds: float


def _summary(result, group_size: int, sweep: str | None = None) -> dict:
    last = {}
    for step, name, value in result.rows:
        if name not in last or step >= last[name][0]:
            last[name] = (step, value)
    return {
        "run_id": result.spec.id,
        "sweep": sweep,
        "status": "diverged" if result.diverged_step is not None else "completed",
        "diverged_step": result.diverged_step,
        "steps": result.spec.steps,
        "seconds": result.seconds,
        "ensemble_size": group_size,
        "final": {name: value for name, (_, value) in sorted(last.items())},
        "versions": {"lmech": lmech.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": str(result.device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def run_job(job: list[RunSpec], store_root: str, on_step: Callable[[int], None] | None = None,
            sweep: str | None = None) -> list[tuple[str, bool]]:
    """Train one ensemble job and write its runs not yet in the store; returns their (run_id, diverged)."""
    store = Store(store_root)
    observer, steps = make_observer(job[0].observe, job[0].steps)
    results = train_ensemble(job, observer, steps, on_step=on_step)
    out = []
    for result in results:
        if store.has(result.spec.id):  # finished before (a resumed job): its record is kept as it is
            continue
        store.write(result.spec.id, result.spec.model_dump(mode="json"), result.rows,
                    _summary(result, len(job), sweep), result.final_params)
        out.append((result.spec.id, result.diverged_step is not None))
    return out


def validate_observe(runs: list[RunSpec]) -> None:
    """Check every run's observe section (names, options) before anything trains.

    Raises:
        InputError: one line naming the first bad name or option.
    """
    checked = set()
    for spec in runs:
        key = json.dumps(spec.model_dump(mode="json")["observe"], sort_keys=True)
        if key not in checked:
            plan_observations(spec.observe, spec.steps)
            checked.add(key)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the sweep process dies, however it dies (SIGKILL
    included), so a killed sweep leaves no worker writing to the store. Linux: the kernel's
    parent-death signal (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _worker(job: list[RunSpec], store_root: str, sweep: str | None = None) -> list[tuple[str, bool]]:
    torch.set_num_threads(1)
    return run_job(job, store_root, sweep=sweep)


def execute(runs: list[RunSpec], store: Store, executor: str = "local", workers: int = 2,
            progress: Callable[[int, int], None] | None = None, max_ensemble: int = 256,
            sweep: str | None = None, ray_address: str | None = None) -> ExecutionReport:
    """Train every run of `runs` not yet in `store`; return what happened.

    progress(done_steps, total_steps) is called as training advances (local executor)
    or as jobs finish (process executor). sweep: a name stored in each run's summary (the
    `sweep` column of `Store.query`'s `runs` table; the CLI passes the spec's `name`).
    ray_address (executor "ray"): None starts a local Ray cluster with `workers` CPUs; "auto" or
    "HOST:PORT" joins a running one.
    """
    start = time.perf_counter()
    validate_observe(runs)
    jobs, skipped = plan_jobs(runs, store, max_ensemble)
    total = sum(job[0].steps for job in jobs) or 1
    done = 0
    outcomes: list[tuple[str, bool]] = []
    if executor == "local" or (executor == "process" and len(jobs) <= 1):
        for job in jobs:
            base = done

            def on_step(step, base=base):
                if progress and (step % 10 == 0 or step == job[0].steps):
                    progress(base + step, total)

            outcomes += run_job(job, str(store.root), on_step, sweep)
            done += job[0].steps
    elif executor == "process":
        with ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(_worker, job, str(store.root), sweep): job for job in jobs}
            for future in as_completed(futures):
                outcomes += future.result()
                done += futures[future][0].steps
                if progress:
                    progress(done, total)
    elif executor == "ray":
        from lmech.engine.ray_executor import run_on_ray

        outcomes += run_on_ray(jobs, str(store.root), sweep, ray_address, workers,
                               (lambda steps: progress(steps, total)) if progress else None)
    else:
        raise ValueError(f"unknown executor '{executor}' (local, process, ray)")
    if progress:
        progress(total, total)
    ids = list(dict.fromkeys(spec.id for spec in runs))
    return ExecutionReport(ids, len(outcomes), skipped, sum(d for _, d in outcomes),
                           time.perf_counter() - start)
