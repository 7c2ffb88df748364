"""Sweep scale: 1,000 tiny runs through lmech's local executor, lmech on Ray, and Ray Tune.

What is measured: runs per second, wall clock, of one sweep of N tiny runs (default 1,000: an MLP
of width 8 and depth 1 on digits, 20 steps, loss observed every 10 steps; a grid of seeds x
learning rates), each way from a fresh store, in this one process:

- lmech local: `lmech.engine.execute(runs, store)`, the grouped ensemble jobs in this process;
- lmech on Ray: `execute(..., executor="ray", workers=W)`: the same jobs as Ray tasks on a local
  cluster on loopback that the sweep starts and stops (its start-up is counted);
- Ray Tune: `tune.Tuner` with one trial per run (grid search over the same seeds and learning
  rates, W concurrent trials of 1 CPU, actors reused: Tune's fastest setting; `ray.init(num_cpus=W)`
  counted), each trial training its run with lmech's own trainer (`lmech.train.train_run`, the
  ensemble trainer with K = 1, with the same observer) and reporting its final loss to Tune. Tune keeps its own results; nothing is written to
  an lmech store on that side, which favours Tune slightly.

Prints one line per way, then `speed-up: N.Nx` of lmech-on-Ray over Ray Tune (runs per second of
one over the other). The peer's per-trial overhead dominates at this size (measured elsewhere at
about 0.2 s per trial); lmech's advantage comes from one task per ensemble job instead of one trial
per run. Numbers are noisy on a shared machine: rerun on an idle one before quoting them.

Run: `make bench-sweep-scale` (builds .venv-bench with ray[tune] from bench/requirements-sweep-scale.txt),
or `python bench/sweep_scale.py --runs 1000 --workers 2`.
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("LMECH_THREADS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from lmech.engine import execute  # noqa: E402
from lmech.spec import SweepSpec, expand_sweep  # noqa: E402
from lmech.store import Store  # noqa: E402

BASE = {"model": {"width": 8, "depth": 1}, "steps": 20, "optimizer": {"batch_size": 32},
        "observe": {"loss": {"every": 10}}}
LRS = [0.05, 0.1, 0.2, 0.4]


def sweep(n_runs: int):
    """n_runs RunSpecs: len(LRS) learning rates x n_runs / len(LRS) seeds (one ensemble group)."""
    seeds = list(range(max(1, n_runs // len(LRS))))
    return expand_sweep(SweepSpec.model_validate({**BASE, "sweep": {"seed": seeds, "optimizer.lr": LRS}}))


def time_lmech(runs, root: str, executor: str, workers: int) -> float:
    os.environ.pop("RAY_ADDRESS", None)
    start = time.perf_counter()
    report = execute(runs, Store(root), executor=executor, workers=workers, max_ensemble=64)
    seconds = time.perf_counter() - start
    assert report.trained == len(runs), report
    return seconds


def _trial(config: dict) -> None:
    """One Tune trial: train one run with lmech's trainer and report its final training loss."""
    from ray import tune

    from lmech.observables import make_observer
    from lmech.spec import RunSpec
    from lmech.train import train_run

    spec = RunSpec.model_validate({**BASE, "seed": config["seed"], "optimizer": {**BASE["optimizer"],
                                                                                 "lr": config["lr"]}})
    observer, steps = make_observer(spec.observe, spec.steps)
    result = train_run(spec, observer, steps)
    losses = [value for _, name, value in result.rows if name == "loss/train"]
    tune.report({"loss": losses[-1] if losses else float("nan")})


def time_tune(runs, root: str, workers: int) -> float:
    import ray
    from ray import tune

    seeds = sorted({spec.seed for spec in runs})
    start = time.perf_counter()
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_trial, {"cpu": 1}),
            param_space={"seed": tune.grid_search(seeds), "lr": tune.grid_search(LRS)},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=workers, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=root, name="sweep_scale", verbose=0))
        results = tuner.fit()
        seconds = time.perf_counter() - start
        errors = [r.error for r in results if r.error is not None]
        assert len(results) == len(runs) and not errors, errors[:1]
    finally:
        ray.shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the sweep (a multiple of 4)")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the Ray cluster / concurrent trials")
    parser.add_argument("--skip-tune", action="store_true", help="leave out Ray Tune (no ray[tune] installed)")
    args = parser.parse_args()
    runs = sweep(args.runs)
    print(f"sweep: {len(runs)} runs (MLP w8 d1, {BASE['steps']} steps, digits), {args.workers} workers, "
          f"LMECH_THREADS={os.environ['LMECH_THREADS']}, {os.cpu_count()} CPUs visible")
    scratch = tempfile.mkdtemp(prefix="lmech-sweep-scale-")
    try:
        rates = {}
        ways = [("lmech local", lambda: time_lmech(runs, f"{scratch}/local", "local", args.workers))]
        if not args.skip_tune:  # before lmech on Ray: Tune's ray.init starts its own local cluster
            ways.append(("Ray Tune", lambda: time_tune(runs, f"{scratch}/tune", args.workers)))
        ways.append(("lmech on Ray", lambda: time_lmech(runs, f"{scratch}/ray", "ray", args.workers)))
        for label, call in ways:
            seconds = call()
            rates[label] = len(runs) / seconds
            print(f"{label:>13}: {seconds:8.2f} s  {rates[label]:9.1f} runs/s", flush=True)
        if "Ray Tune" in rates:
            print(f"speed-up: {rates['lmech on Ray'] / rates['Ray Tune']:.1f}x (lmech on Ray over Ray Tune)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
