"""A fair comparison of optimizers: the same lr grid and seeds, the lr chosen on validation, intervals on test.

Procedure (the protocol of Choi et al. 2019, "On empirical comparisons of optimizers for deep
learning", and Schmidt et al. 2021, "Descending through a crowded valley": tune every optimizer on
the same budget, select on held-out data, report the spread over seeds):

1. Every optimizer trains on every learning rate of one grid with the same seeds; all other
   hyperparameters come from the base spec. The lr x seed runs of one optimizer differ only in
   ensemble scalars, so they train as one vectorized ensemble job.
2. The task's test split is cut, by a permutation seeded with `split_seed`, into a validation half
   and a test half. Each optimizer's lr is the grid value with the lowest validation loss averaged
   over seeds (a diverged seed makes that lr +inf).
3. At that lr, the final test loss of each seed; its mean with a bootstrap interval over seeds,
   and for every pair of optimizers the difference of means with its interval (paired by seed when
   the seeds are the same, as here). `lmech.compare.statistics` has the interval's algorithm.

Cost: (optimizers x lrs x seeds) training runs in one ensemble job per optimizer, then one forward
pass per run over the test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch

from lmech.compare.statistics import Interval, difference_interval, mean_interval
from lmech.engine import execute
from lmech.errors import InputError
from lmech.seeding import generator
from lmech.spec import OptimizerSpec, RunSpec, group_key
from lmech.store import Store
from lmech.train import build_ensemble, per_member_loss

__all__ = ["OptimizerResult", "OptimizerComparison", "comparison_runs", "heldout_losses", "analyze",
           "compare_optimizers", "log_grid"]


@dataclass(frozen=True)
class OptimizerResult:
    """One optimizer's tuning: validation loss per (lr, seed), the chosen lr, test losses there."""

    label: str
    optimizer: str
    lr_grid: tuple[float, ...]
    seeds: tuple[int, ...]
    validation: np.ndarray  # (L, S); +inf where a run diverged
    best_lr: float
    at_edge: bool  # the chosen lr is the grid's smallest or largest
    test: np.ndarray  # (S,) final test loss of each seed at best_lr
    test_interval: Interval


@dataclass(frozen=True)
class OptimizerComparison:
    """Every optimizer's result, and the pairwise differences of mean test loss (first minus second)."""

    results: dict[str, OptimizerResult]
    differences: dict[tuple[str, str], Interval] = field(default_factory=dict)
    paired: bool = True
    level: float = 0.95

    def to_json(self) -> dict:
        return {
            "level": self.level, "paired": self.paired,
            "optimizers": [{"label": r.label, "optimizer": r.optimizer, "best_lr": r.best_lr, "at_edge": r.at_edge,
                            "lr_grid": list(r.lr_grid), "seeds": list(r.seeds),
                            "validation_mean": [_mean_or_inf(row) for row in r.validation],
                            "test_mean": r.test_interval.estimate, "test_interval": [r.test_interval.low,
                                                                                     r.test_interval.high],
                            "test": r.test.tolist()} for r in self.results.values()],
            "differences": [{"first": a, "second": b, "difference": d.estimate, "interval": [d.low, d.high],
                             "significant": d.excludes_zero} for (a, b), d in self.differences.items()],
        }


def _mean_or_inf(row: np.ndarray) -> float:
    return float(np.mean(row)) if np.all(np.isfinite(row)) else float("inf")


def log_grid(low: float, high: float, count: int) -> list[float]:
    """`count` learning rates log-spaced from low to high inclusive."""
    if not (low > 0 and high > low and count >= 2):
        raise InputError(f"an lr grid needs 0 < low < high and at least 2 values, got {low}:{high}:{count}")
    return [float(v) for v in np.geomspace(low, high, count)]


def _check_grid(lr_grid: list[float], seeds: list[int]) -> None:
    if len(lr_grid) < 2:
        raise InputError(f"the lr grid needs at least 2 values to tune on, got {len(lr_grid)}")
    if any(not (lr > 0) or not np.isfinite(lr) for lr in lr_grid):
        raise InputError("every learning rate of the grid must be positive and finite")
    if len(set(lr_grid)) != len(lr_grid):
        raise InputError("the lr grid has repeated values")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise InputError(f"the comparison needs at least 2 distinct seeds, got {list(seeds)}")


def comparison_runs(base: RunSpec, optimizers: dict[str, OptimizerSpec], lr_grid: list[float],
                    seeds: list[int] | dict[str, list[int]]) -> dict[str, list[RunSpec]]:
    """Per label, the runs (lr-major, then seed) of that optimizer on the grid.

    seeds: one list for every optimizer (the fair protocol), or a list per label (used to draw a
    renamed copy of an optimizer on independent seeds in the calibration test).
    """
    if len(optimizers) < 2:
        raise InputError(f"compare at least 2 optimizers, got {len(optimizers)}")
    out = {}
    for label, optimizer in optimizers.items():
        label_seeds = seeds[label] if isinstance(seeds, dict) else seeds
        _check_grid(lr_grid, label_seeds)
        out[label] = [base.model_copy(update={"optimizer": optimizer.model_copy(update={"lr": float(lr)}),
                                              "seed": int(seed)})
                      for lr in lr_grid for seed in label_seeds]
        out[label] = [RunSpec.model_validate(spec.model_dump()) for spec in out[label]]  # re-validated
    return out


def _split(m: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation, test) indices: a seeded permutation of the M test examples cut in half."""
    if m < 2:
        raise InputError(f"the task's test split has {m} example(s); validation and test need at least 2")
    order = torch.randperm(m, generator=generator(split_seed, "compare/validation-split"))
    return order[: m // 2], order[m // 2:]


def heldout_losses(store: Store, specs: list[RunSpec], split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) final losses, each (K,), of runs that share one ensemble group.

    Rebuilds the ensemble (task, module), loads each run's saved parameters and evaluates the
    task's loss on the two halves of its test split. A diverged run is +inf in both.
    """
    if len({group_key(s) for s in specs}) != 1:
        raise ValueError("heldout_losses takes runs of one ensemble group")
    state = build_ensemble(specs)
    diverged = np.array([store.summary(s.id).get("status") == "diverged" for s in specs])
    with torch.no_grad():
        for k, spec in enumerate(specs):
            for name, value in store.params(spec.id).items():
                state.params[name][k].copy_(value)
    state.optimizer_state = {}  # saved parameters are already the evaluation point
    outputs = state.outputs(state.x_test)  # (K, M, ...)
    shared = not state.per_member_data  # targets (M, ...) for every member, else (K, M, ...)
    val_index, test_index = _split(state.y_test.shape[0 if shared else 1], split_seed)

    def loss_on(index: torch.Tensor) -> np.ndarray:
        targets = state.y_test[index] if shared else state.y_test[:, index]
        return per_member_loss(outputs[:, index], targets, state.loss).double().numpy()

    val, test = loss_on(val_index), loss_on(test_index)
    bad = diverged | ~np.isfinite(val) | ~np.isfinite(test)
    val[bad], test[bad] = np.inf, np.inf
    return val, test


def analyze(store: Store, runs: dict[str, list[RunSpec]], level: float = 0.95, split_seed: int = 0,
            resamples: int = 10_000) -> OptimizerComparison:
    """Choose each optimizer's lr on validation and compare their test losses (runs must be in the store)."""
    results = {}
    for label, specs in runs.items():
        lr_grid = tuple(dict.fromkeys(s.optimizer.lr for s in specs))
        seeds = tuple(dict.fromkeys(s.seed for s in specs))
        val, test = np.empty(len(specs)), np.empty(len(specs))
        groups: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(group_key(spec), []).append(i)
        for members in groups.values():
            val[members], test[members] = heldout_losses(store, [specs[i] for i in members], split_seed)
        val, test = val.reshape(len(lr_grid), len(seeds)), test.reshape(len(lr_grid), len(seeds))
        means = np.array([_mean_or_inf(row) for row in val])
        if not np.isfinite(means).any():
            raise InputError(f"{label}: some seed diverged at every learning rate of the grid; lower the grid")
        best = int(np.argmin(means))
        results[label] = OptimizerResult(label, specs[0].optimizer.name, lr_grid, seeds, val, lr_grid[best],
                                         best in (0, len(lr_grid) - 1), test[best],
                                         mean_interval(test[best], level, resamples))
    seed_sets = {r.seeds for r in results.values()}
    paired = len(seed_sets) == 1
    differences = {(a, b): difference_interval(results[a].test, results[b].test, paired, level, resamples)
                   for a, b in combinations(results, 2)}
    return OptimizerComparison(results, differences, paired, level)


def compare_optimizers(store: Store, base: RunSpec, optimizers: dict[str, OptimizerSpec], lr_grid: list[float],
                       seeds: list[int], level: float = 0.95, split_seed: int = 0,
                       progress: Callable[[int, int], None] | None = None, workers: int = 1) -> OptimizerComparison:
    """Train every optimizer on the grid (finished runs are reused from the store), then `analyze`."""
    runs = comparison_runs(base, optimizers, lr_grid, seeds)
    execute([spec for specs in runs.values() for spec in specs], store,
            executor="process" if workers > 1 else "local", workers=workers, progress=progress,
            sweep="compare-optimizers")
    return analyze(store, runs, level, split_seed)
