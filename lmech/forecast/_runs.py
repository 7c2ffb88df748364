"""Short training runs of the user's model at a given width, as ensembles: the forecasts' measurements.

One job: train K members that differ in learning rate and seed (one width, one schedule, one
length) and return each member's loss curve. Two runners with one interface:

- `SpecRunner`: a RunSpec (any lmech family, or `model.kind: factory`), trained by lmech's
  ensemble trainer through the engine into a temporary store; the width is `model.width`
  (families) or the factory's `width` keyword.
- `DataRunner`: the user's factory and the user's own (inputs, targets), trained by the same
  vectorized step (`lmech.train.stack_members` + `losses_and_grads` + `optimizer_step`).

Both return `Curves`: steps (T,) int and losses (K, T) float64 (the training loss on the data, on a
fixed subset of EVAL_EXAMPLES when the data are larger, or
for a SpecRunner the metric it was built with); a member whose loss became non-finite is +inf from
there on (it diverged). It ignores what is fitted to the curves (lr_transfer.py, compute.py,
curve.py).

Cost: steps x (one stacked forward + backward of K members) plus one full-data forward every
`every` steps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lmech.errors import InputError

__all__ = ["Curves", "SpecRunner", "DataRunner", "with_width", "count_parameters"]

Progress = Callable[[int, int], None] | None
EVAL_EXAMPLES = 4096  # DataRunner: the recorded loss is on at most this many examples (a fixed seeded subset)


@dataclass(frozen=True)
class Curves:
    steps: np.ndarray  # (T,)
    losses: np.ndarray  # (K, T); +inf after divergence


def with_width(model_spec, width: int):
    """The model spec at `width`: the factory's `width` keyword, or the family's `width` field."""
    if getattr(model_spec, "kind", None) == "factory":
        return model_spec.model_copy(update={"kwargs": {**model_spec.kwargs, "width": int(width)}})
    if "width" not in type(model_spec).model_fields:
        raise InputError(f"model kind '{getattr(model_spec, 'kind', '?')}' has no width to scale")
    return type(model_spec).model_validate({**model_spec.model_dump(), "width": int(width)})


def count_parameters(module: torch.nn.Module) -> int:
    """Trainable parameters of a module (tied tensors once)."""
    seen, total = set(), 0
    for parameter in module.parameters():
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


@dataclass(frozen=True)
class SpecRunner:
    """Runs of `base` (a RunSpec) at other widths, lrs, seeds, schedules and lengths.

    metric: the store series read back, "loss/train" (default) or "loss/test". The optimizer,
    batch size, task and everything else come from `base`.
    """

    base: Any
    metric: str = "loss/train"

    def model_at(self, width: int) -> torch.nn.Module:
        from lmech.models.family import build_model
        from lmech.tasks import make_task

        task = make_task(self.base.task, 0)
        spec = with_width(self.base.model, width)
        return build_model(spec, tuple(task.x_train.shape[1:]), task.output_dim, task.vocab_size, 0)

    def parameters(self, width: int) -> int:
        return count_parameters(self.model_at(width))

    @property
    def batch_size(self) -> int:
        from lmech.tasks import make_task

        b = self.base.optimizer.batch_size
        return int(b) if b is not None else int(make_task(self.base.task, 0).x_train.shape[0])

    def specs(self, width: int, lrs, seeds, steps: int, schedule: str, every: int) -> list:
        from lmech.spec import ObserveSpec, RunSpec

        model = with_width(self.base.model, width)
        observe = {"loss": ObserveSpec(every=max(int(every), 1), train=self.metric == "loss/train")}
        out = []
        for lr, seed in zip(lrs, seeds):
            optimizer = self.base.optimizer.model_copy(update={"lr": float(lr), "schedule": schedule})
            tree = {**self.base.model_dump(mode="json"), "model": model.model_dump(mode="json"),
                    "optimizer": optimizer.model_dump(mode="json"), "steps": int(steps), "seed": int(seed),
                    "observe": {k: v.model_dump(mode="json") for k, v in observe.items()}}
            out.append(RunSpec.model_validate(tree))
        return out

    def curves(self, width: int, lrs, seeds, steps: int, schedule: str = "constant", every: int = 10,
               progress: Progress = None) -> Curves:
        from lmech.engine import execute
        from lmech.store import Store

        specs = self.specs(width, lrs, seeds, steps, schedule, every)
        with tempfile.TemporaryDirectory(prefix="lmech-forecast-") as root:
            store = Store(root)
            execute(specs, store, progress=progress)
            series = [store.series(s.id, self.metric) for s in specs]
            diverged = [store.summary(s.id)["status"] == "diverged" for s in specs]
        grid = sorted({int(t) for steps_, _ in series for t in steps_})
        losses = np.full((len(specs), len(grid)), np.inf)
        where = {t: i for i, t in enumerate(grid)}
        for k, ((steps_, values), gone) in enumerate(zip(series, diverged)):
            for t, v in zip(steps_, values):
                losses[k, where[int(t)]] = v if np.isfinite(v) else np.inf
            if gone and steps_:  # past the last recorded step the member is diverged
                losses[k, where[int(steps_[-1])] + 1:] = np.inf
        return Curves(np.asarray(grid), losses)


@dataclass(frozen=True)
class DataRunner:
    """Runs of the user's `factory(width=..., **kwargs)` on the user's (inputs, targets).

    optimizer: an `lmech.spec.OptimizerSpec` (name, momentum, betas, weight decay, batch size;
    its lr and schedule are replaced per run). loss: "mse", "half_sse" or "cross_entropy".
    """

    factory: str
    inputs: Any
    targets: torch.Tensor
    loss: str
    optimizer: Any
    kwargs: dict = field(default_factory=dict)

    def model_at(self, width: int, seed: int = 0) -> torch.nn.Module:
        """The factory's module at `width`, initialised from `seed`: torch's RNG is seeded from it
        (`call_factory`), and a factory with its own `seed` keyword also gets it (one that seeds
        torch itself would otherwise give every member the same weights)."""
        import inspect

        from lmech.models.factory import call_factory, load_factory

        kwargs = {**self.kwargs, "width": int(width)}
        try:
            takes_seed = "seed" in inspect.signature(load_factory(self.factory)).parameters
        except (TypeError, ValueError):
            takes_seed = False
        if takes_seed and "seed" not in self.kwargs:
            kwargs["seed"] = int(seed)
        return call_factory(self.factory, kwargs, seed)

    def parameters(self, width: int) -> int:
        return count_parameters(self.model_at(width))

    @property
    def batch_size(self) -> int:
        n = int(self.targets.shape[0])
        b = self.optimizer.batch_size
        return n if b is None else min(int(b), n)

    def curves(self, width: int, lrs, seeds, steps: int, schedule: str = "constant", every: int = 10,
               progress: Progress = None) -> Curves:
        from lmech.instruments._call import take
        from lmech.seeding import generator
        from lmech.train import MemberHyper, OptimizerOptions, init_optimizer_state, lr_factor, optimizer_step, stack_members
        from lmech.train.functional import losses_and_grads
        from lmech.train.losses import per_member_loss

        if not isinstance(self.inputs, torch.Tensor):
            raise InputError("forecasts on --data need inputs as one tensor (N, ...)")
        opt = self.optimizer
        if opt.name not in ("sgd", "adam", "adamw"):
            raise InputError(f"forecasts on --data train with sgd, adam or adamw, not '{opt.name}'")
        modules = [self.model_at(width, int(seed)) for seed in seeds]
        stacked = stack_members(modules)
        k = len(modules)
        params = stacked.params
        state = init_optimizer_state(opt.name, params)
        hyper = MemberHyper(torch.tensor([float(v) for v in lrs]), torch.full((k,), float(opt.weight_decay)),
                            torch.full((k,), float(opt.momentum)))
        alive = torch.ones(k, dtype=torch.bool)
        n, batch = int(self.targets.shape[0]), self.batch_size
        g = generator(int(seeds[0]), "forecast/minibatch")
        grid = sorted({*range(0, steps + 1, max(int(every), 1)), steps})
        losses = np.full((k, len(grid)), np.inf)

        subset = torch.randperm(n, generator=generator(int(seeds[0]), "forecast/evaluation"))[:EVAL_EXAMPLES]
        eval_x, eval_y = (take(self.inputs, subset), self.targets[subset]) if n > EVAL_EXAMPLES else (self.inputs, self.targets)

        def record(column: int) -> None:
            with torch.no_grad():
                values = per_member_loss(stacked.forward(params, eval_x), eval_y, self.loss)
            for member in range(k):
                if alive[member] and bool(torch.isfinite(values[member])):
                    losses[member, column] = float(values[member])

        column = 0
        record(column)
        for step in range(1, steps + 1):
            if batch < n:
                index = torch.randint(0, n, (batch,), generator=g)  # with replacement: O(batch) per step
                x, y = take(self.inputs, index), self.targets[index]
            else:
                x, y = self.inputs, self.targets
            try:
                values, grads = losses_and_grads(stacked, x, y, self.loss)
            except RuntimeError as error:
                raise InputError(f"the model cannot be trained on this data: {str(error).splitlines()[0]}") from None
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                alive &= finite
                keep = alive.float()
                hyper = MemberHyper(hyper.lr * keep, hyper.weight_decay, hyper.momentum)
                grads = {name: torch.nan_to_num(v) * keep.view(-1, *([1] * (v.dim() - 1))) for name, v in grads.items()}
                with torch.no_grad():
                    for p in params.values():
                        p.nan_to_num_(0.0)
            optimizer_step(opt.name, params, grads, state, hyper, lr_factor(schedule, step - 1, steps, opt.warmup_steps),
                           {}, step, opt.beta1, opt.beta2, opt.eps, options=OptimizerOptions.from_spec(opt))
            if step in grid:
                column += 1
                record(column)
            if progress is not None and (step % 10 == 0 or step == steps):
                progress(step, steps)
        return Curves(np.asarray(grid), losses)
