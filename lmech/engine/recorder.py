"""Recorder: measure instruments on a schedule inside a user's own training loop; write one run.

One job: collect (step, name, value) rows from a loop lmech did not write (user
scalars every call, `measure` instruments on a schedule) and write them as ONE
run in lmech's store layout when the loop ends, so `lmech ls`, `lmech show` and
`Store.query` work on it. It ignores how the model is trained.
"""

import platform
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from lmech.errors import InputError
from lmech.instruments._json import to_jsonable
from lmech.observables.measure import check_request, measure
from lmech.spec import ObserveSpec
from lmech.store import Store, check_run_id
from lmech.train.schedule import observation_steps

__all__ = ["Recorder"]

_SCHEDULE_KEYS = ("every", "count")


class Recorder:
    """Attach to a training loop: `rec(step, model, loss=...)` every step, `rec.close()` at the end.

    Example:
        with Recorder("runs", loss_fn, (x, y), observe={"sharpness": {"every": "log", "count": 20}},
                      total_steps=1000, config={"lr": 0.1}) as rec:
            for step in range(1001):
                rec(step, model, loss=loss.item())
                ...

    Args:
        store_dir: the store root (a directory of runs; created if needed).
        loss_fn: (outputs (N, C), targets (N, ...)) -> scalar batch-mean loss,
            used by the instruments (not by the user's training).
        batch: (inputs (N, ...), targets (N, ...)), the fixed batch the
            instruments measure on (e.g. the full training set).
        observe: {instrument name: {"every": "log" | int, "count": int (log
            schedule size, default 20), **instrument options}}; names and
            options as in `lmech.measure` (e.g. {"sharpness": {"every": 100, "k": 3}}).
        total_steps: the last step of the schedule (steps 0 and total_steps are
            always scheduled; a loop `for step in range(total_steps)` never
            reaches the last one: call rec(total_steps, model) after it).
        config: JSON-able user configuration, stored in spec.json under "config".
        seed: passed to every instrument that takes a seed (same seed at every
            step: the probes are common random numbers across steps).
        name: a label; spec.json's "name" and the run id's prefix.
        run_id: the run's directory name; default `<name>-<time>-<random>`.
        save_params: write the last model's parameters as params.pt.

    Rows written (metrics.parquet, columns run_id, step, name, value):
        user scalars under their keyword names; every scalar of every instrument
        as "<instrument>/<field>[/<i>]", the names the trainer writes too (e.g.
        "sharpness/eigenvalues/0"; see `lmech.observables.registry.result_rows`).

    Failure modes:
        Nothing is written until close(); a crash, or an exception inside the
        `with` block, leaves no run (partial directories never look complete,
        see `Store.write`). Measuring costs what the instruments cost, at the
        scheduled steps only. The model is never modified (parameters, buffers,
        .grad, train/eval flags, global RNG: instruments measure in eval mode on
        copies), so the user's training trajectory is the same with a Recorder.
    """

    def __init__(self, store_dir: str | Path, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 batch: tuple[Tensor, Tensor], *, observe: Mapping[str, Mapping[str, Any]] | None = None,
                 total_steps: int, config: Mapping[str, Any] | None = None, seed: int = 0,
                 name: str = "recorded", run_id: str | None = None, save_params: bool = True):
        if total_steps < 0:
            raise InputError(f"total_steps must be >= 0, got {total_steps}")
        observe = {k: dict(v or {}) for k, v in (observe or {}).items()}
        self._options = {k: {o: x for o, x in v.items() if o not in _SCHEDULE_KEYS} for k, v in observe.items()}
        if observe:
            check_request(list(observe), self._options, "recorder")
            for instrument, when in observe.items():
                schedule = {key: when[key] for key in _SCHEDULE_KEYS if key in when}
                try:
                    ObserveSpec.model_validate(schedule)  # the run specs' schedule rules
                except ValidationError as error:
                    first = error.errors()[0]
                    raise InputError(f"{instrument}.{first['loc'][0]}: {first['msg']} "
                                     f"(got {first.get('input')!r})") from None
        self._schedule = {k: set(observation_steps(v.get("every", "log"), int(v.get("count", 20)), total_steps))
                          for k, v in observe.items()}
        self.store = Store(store_dir)
        self.loss_fn, self.batch, self.total_steps, self.seed = loss_fn, batch, total_steps, seed
        self.run_id = check_run_id(run_id or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
        self._spec = {"name": name, "kind": "recorded", "seed": seed, "steps": total_steps,
                      "config": to_jsonable(dict(config or {})), "observe": to_jsonable(observe),
                      "loss_fn": getattr(loss_fn, "__qualname__", type(loss_fn).__name__),
                      "batch_size": int(batch[0].shape[0])}
        self._save_params = save_params
        self._rows: list[tuple[int, str, float]] = []
        self._last_params: dict[str, Tensor] | None = None
        self._model_class: str | None = None
        self._device = "cpu"
        self._measured: set[tuple[str, int]] = set()
        self._started = time.perf_counter()
        self._path: Path | None = None
        self._closed = False

    def steps(self, name: str) -> list[int]:
        """The scheduled steps of one instrument, sorted."""
        return sorted(self._schedule[name])

    def __call__(self, step: int, model: torch.nn.Module, **scalars: float | Tensor) -> dict[str, float]:
        """Record the user's scalars at `step` and measure the instruments due at it.

        Returns the rows written at this call as {name: value}.
        """
        if self._closed:
            raise RuntimeError(f"Recorder for run '{self.run_id}' is closed")
        step = int(step)
        written: dict[str, float] = {}
        for key, value in scalars.items():
            written[key] = float(value.detach()) if isinstance(value, Tensor) else float(value)
        due = [n for n, steps in self._schedule.items() if step in steps and (n, step) not in self._measured]
        if due:
            result = measure(model, self.loss_fn, self.batch, due, seed=self.seed,
                             **{n: self._options[n] for n in due})
            self._measured.update((name, step) for name in due)
            written.update(result.rows())
        self._rows.extend((step, key, value) for key, value in written.items())
        if self._save_params:
            self._last_params = {n: p.detach().clone() for n, p in model.named_parameters()}
        self._model_class = f"{type(model).__module__}.{type(model).__qualname__}"
        self._device = str(next(iter(model.parameters()), torch.empty(0)).device)
        return written

    def close(self) -> Path:
        """Write the run (once; later calls return the same path) and return its directory."""
        if self._closed:
            if self._path is None:
                raise RuntimeError(f"run '{self.run_id}' was abandoned after an error; nothing was written")
            return self._path
        last: dict[str, tuple[int, float]] = {}
        for step, key, value in self._rows:
            if key not in last or step >= last[key][0]:
                last[key] = (step, value)
        missed = {n: sorted(s - {t for m, t in self._measured if m == n}) for n, s in self._schedule.items()}
        spec = dict(self._spec, model_class=self._model_class,
                    versions=_versions(), device=self._device)
        summary = {"run_id": self.run_id, "status": "completed", "steps": self.total_steps,
                   "last_step": max((s for s, _, _ in self._rows), default=None),
                   "seconds": time.perf_counter() - self._started,
                   "final": {k: v for k, (_, v) in sorted(last.items())},
                   "missed_observations": {n: m for n, m in missed.items() if m},
                   "versions": _versions(), "device": self._device,
                   "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._path = self.store.write(self.run_id, spec, self._rows, summary,
                                      self._last_params if self._save_params else None)
        self._closed = True
        return self._path

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # abandoned: nothing is written
            self._rows = []
        return False


def _versions() -> dict[str, str]:
    import lmech

    return {"lmech": lmech.__version__, "torch": torch.__version__, "python": platform.python_version()}
