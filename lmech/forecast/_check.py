"""Held-out checks for forecasts: short real training runs on a copy of the user's model.

One job: train a deep copy of an nn.Module with a torch optimizer for a few steps and say
whether it diverged, bisect the divergence learning rate, and find the best learning rate
on a grid at a batch size. It ignores what was forecast (the callers compare) and never
modifies the caller's model (every run trains its own `copy.deepcopy`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.instruments._call import call_model, num_examples, take
from lmech.seeding import generator

__all__ = ["OptimizerChoice", "make_optimizer", "run_loss", "diverges", "bisect_divergence_lr",
           "DivergenceBracket", "best_lr_at_batch"]

OPTIMIZERS = ("sgd", "momentum", "adam")
DIVERGED = math.inf


@dataclass(frozen=True)
class OptimizerChoice:
    """An optimizer without its learning rate: name in sgd | momentum | adam, momentum beta
    (PyTorch heavy ball m <- beta m + g), Adam's (beta1, beta2) and eps."""

    name: str = "sgd"
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise InputError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.name}'")
        if not 0 <= self.momentum < 1:
            raise InputError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not all(0 <= b < 1 for b in self.betas):
            raise InputError(f"Adam betas must be in [0, 1), got {self.betas}")
        if not self.eps > 0:
            raise InputError(f"--eps must be > 0, got {self.eps}")


def make_optimizer(choice: OptimizerChoice, params, lr: float) -> torch.optim.Optimizer:
    """The torch optimizer for `choice` at learning rate `lr` (no weight decay)."""
    if choice.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=choice.betas, eps=choice.eps)
    return torch.optim.SGD(params, lr=lr, momentum=choice.momentum if choice.name == "momentum" else 0.0)


def _full_loss(model: torch.nn.Module, loss_fn, data) -> float:
    with torch.no_grad():
        return float(loss_fn(call_model(model, data[0]), data[1]))


def run_loss(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data, choice: OptimizerChoice,
             lr: float, steps: int, *, batch_size: int | None = None, seed: int = 0,
             blowup: float = 1e6) -> tuple[float, float]:
    """(initial, final) full-data loss of `steps` optimizer steps on a deep copy of `model`.

    batch_size None is full-batch; otherwise minibatches drawn with replacement from a
    generator seeded by (seed, "forecast-check-batches"). The copy trains in eval mode (dropout
    off, batch-norm running statistics used, not updated). The run stops early, returning
    final = inf, when the loss is non-finite or exceeds `blowup` times the initial loss.
    Cost: `steps` forward-backward passes on the batch plus one full-data loss per step
    (full batch) or at the end (minibatches).
    """
    net = copy.deepcopy(model)
    net.train(False)
    n = num_examples(data[0])
    initial = _full_loss(net, loss_fn, data)
    optimizer = make_optimizer(choice, [p for p in net.parameters() if p.requires_grad], lr)
    draws = generator(seed, "forecast-check-batches")
    for _ in range(steps):
        if batch_size is None:
            batch = data
        else:
            index = torch.randint(0, n, (batch_size,), generator=draws)
            batch = (take(data[0], index), take(data[1], index))
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(call_model(net, batch[0]), batch[1])
        value = float(loss.detach())
        if not math.isfinite(value) or value > blowup * max(initial, 1e-30):
            return initial, DIVERGED
        loss.backward()
        optimizer.step()
    final = _full_loss(net, loss_fn, data)
    return initial, final if math.isfinite(final) else DIVERGED


def diverges(model, loss_fn, data, choice: OptimizerChoice, lr: float, steps: int) -> bool:
    """True when full-batch training at `lr` ends above its initial loss (or blows up) after `steps` steps.

    A catapult (Lewkowycz et al. 2020) spikes the loss and then falls below the start: not divergence.
    """
    initial, final = run_loss(model, loss_fn, data, choice, lr, steps)
    return not final <= initial


@dataclass(frozen=True)
class DivergenceBracket:
    """The divergence learning rate bracketed by bisection: `stable` trained, `unstable` diverged;
    `lr` is their geometric mean; `runs` is the number of training runs spent."""

    stable: float
    unstable: float
    lr: float
    runs: int


def bisect_divergence_lr(model, loss_fn, data, choice: OptimizerChoice, guess: float, *, steps: int = 200,
                         rel_tol: float = 0.05, max_runs: int = 40,
                         progress: Callable[[int, int], None] | None = None) -> DivergenceBracket:
    """Bracket the smallest learning rate at which `steps` full-batch steps diverge.

    Algorithm: from `guess`, double (or halve) until one rate trains and the next diverges,
    then bisect in log space until unstable / stable <= 1 + rel_tol. Each probe is one
    `diverges` run (steps forward-backward passes). Assumes divergence is monotone in lr,
    which holds near the edge for GD on smooth losses; a non-monotone case returns some
    stable/unstable pair it found.
    """
    if not (math.isfinite(guess) and guess > 0):
        raise InputError(f"the learning-rate guess must be finite and > 0, got {guess}")
    runs = 0
    total = max_runs

    def probe(lr: float) -> bool:
        nonlocal runs
        runs += 1
        if progress is not None:
            progress(runs, total)
        return diverges(model, loss_fn, data, choice, lr, steps)

    lo, hi = None, None
    lr = guess
    if probe(lr):
        hi = lr
        while lo is None and runs < max_runs:
            lr /= 2
            if probe(lr):
                hi = lr
            else:
                lo = lr
    else:
        lo = lr
        while hi is None and runs < max_runs:
            lr *= 2
            if probe(lr):
                hi = lr
            else:
                lo = lr
    if lo is None or hi is None:
        raise InputError(f"no divergence bracket within {max_runs} runs from lr {guess:g}")
    while hi / lo > 1 + rel_tol and runs < max_runs:
        mid = math.sqrt(lo * hi)
        if probe(mid):
            hi = mid
        else:
            lo = mid
    return DivergenceBracket(lo, hi, math.sqrt(lo * hi), runs)


def best_lr_at_batch(model, loss_fn, data, choice: OptimizerChoice, batch_size: int, lrs,
                     steps: int, seeds=(0,),
                     progress: Callable[[], None] | None = None) -> tuple[float, list[float]]:
    """(best lr, mean final loss per lr) of `steps` minibatch steps at `batch_size`, over `seeds`
    (each seed its own batch draws). A diverged run counts as inf. Cost: len(lrs) x len(seeds) runs."""
    means = []
    for lr in lrs:
        finals = []
        for seed in seeds:
            finals.append(run_loss(model, loss_fn, data, choice, lr, steps, batch_size=batch_size, seed=seed)[1])
            if progress is not None:
                progress()
        means.append(float(sum(finals) / len(finals)))
    best = min(range(len(lrs)), key=lambda i: (means[i], lrs[i]))
    return float(lrs[best]), means
