"""measure: run registry instruments by name on any (model, loss_fn, batch); tidy results.

One job: dispatch names and per-instrument options (validated by the registry)
to the pure instruments and return their results as one mapping with
`to_json()` and tidy metric `rows()`. It ignores scheduling (the Recorder and
the trainer's observer do that) and the trainer's stacked ensembles.
"""

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.instruments._json import JsonResult, to_jsonable
from lmech.observables.registry import REGISTRY, EntryPoint, get_entry, result_rows, validate_options

__all__ = ["Measurement", "measure", "check_request"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Measurement(Mapping):
    """Results of `measure`: a read-only mapping instrument name -> result.

    `to_json()` gives one object keyed by name (scalars as numbers, arrays as
    nested lists, non-finite numbers as NaN floats: callers writing JSON map them
    to null); `rows()` gives the metric rows {"<name>/<field>[/<i>]": value}.
    """

    results: dict[str, JsonResult]

    def __getitem__(self, name: str) -> JsonResult:
        return self.results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def to_json(self) -> dict[str, Any]:
        """{name: result.to_json()}."""
        return {name: to_jsonable(result) for name, result in self.results.items()}

    def rows(self) -> dict[str, float]:
        """{metric name: value} for every scalar of every result (see `registry.result_rows`)."""
        out: dict[str, float] = {}
        for name, result in self.results.items():
            out.update(result_rows(REGISTRY[name], result))
        return out

    def headline(self, name: str) -> float | None:
        """The instrument's headline scalar (e.g. sharpness -> top eigenvalue), or None."""
        field = REGISTRY[name].headline
        return None if field is None else self.rows().get(f"{name}/{field}")


def check_request(names: list[str] | tuple[str, ...] | str, options: Mapping[str, Mapping[str, Any] | None],
                  entry_point: EntryPoint = "measure") -> list[str]:
    """Validate names and per-instrument options without measuring; returns the names as a list.

    Raises:
        InputError: unknown, repeated or trainer-only names, options for names not
            requested, unknown/ill-typed/out-of-range/missing options.
    """
    names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    if not names or not all(names):
        raise InputError("no observable named; e.g. sharpness,hessian_trace")
    if len(set(names)) != len(names):
        raise InputError(f"observable listed twice: {', '.join(names)}")
    for name in names:
        get_entry(name, entry_point)
    stray = sorted(set(options) - set(names))
    if stray:
        raise InputError(f"options given for {', '.join(stray)}, which is not requested; "
                         f"requested: {', '.join(names)}")
    for name in names:
        validate_options(REGISTRY[name], options.get(name))
    return names


def measure(model: torch.nn.Module, loss_fn: LossFn, batch: tuple, observables: list[str] | tuple[str, ...] | str,
            *, seed: int | None = None, mode: str = "eval", device: str | None = None,
            **options: Mapping[str, Any]) -> Measurement:
    """Measure the named instruments on (model, loss_fn, batch).

    Args:
        model: any nn.Module, in any state; measured in eval mode unless mode="train",
            and left as it was (parameters, buffers, .grad, train/eval flags, global RNG).
        loss_fn: (outputs, targets) -> scalar, e.g. `lmech.instruments.losses.named_loss("cross_entropy")`.
        batch: (inputs, targets); inputs a tensor, tuple or dict of tensors (N first);
            for gradient_noise_scale, critical_batch_forecast and local_learning_coefficient
            it is the data set they sample from.
        observables: registry names of model scope (a list, or one comma-separated string).
        seed: if given, passed as `seed=` to every instrument that takes one, unless its options set it.
        mode: "eval" (default) or "train" (dropout on, seeded by the instrument's seed).
        device: None (default: where the model is), "cpu", "cuda", "cuda:N" or "auto": measure
            a copy of the model and batch there.
        **options: per instrument, a dict of its options, e.g. `sharpness={"k": 3}`.

    Returns:
        Measurement mapping each name (in the order given) to its result.

    Raises:
        InputError: bad names or options (see `check_request`), and the instruments'
            own one-line errors (meta device, ops without a double backward, shapes).

    Algorithm:
        Each instrument runs once, independently (costs add; see REGISTRY[name].cost).
    """
    names = check_request(observables, options)
    results = {}
    for name in names:
        entry = REGISTRY[name]
        chosen = dict(options.get(name) or {})
        if seed is not None and "seed" in entry.options.model_fields:
            chosen.setdefault("seed", seed)
        chosen.setdefault("mode", mode)
        if device is not None:
            chosen.setdefault("device", device)
        results[name] = entry.call(entry.function, model, loss_fn, batch, chosen)
    return Measurement(results)
