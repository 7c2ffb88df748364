"""measure: run standalone instruments by name on any (model, loss_fn, batch); tidy results.

One job: dispatch names and per-instrument options to the standalone instruments
(one nn.Module, one loss, one batch) and return their results as one mapping with
`to_json()` and tidy scalar `rows()`. It ignores scheduling (see
`lmech.store.recorder.Recorder`) and the trainer's stacked ensembles (see
`OBSERVABLES` in `observables/__init__.py`).

Included (INSTRUMENTS): sharpness, preconditioned_sharpness (option
`preconditioner` required), hessian_trace, spectral_density,
effective_dimensionality (option `z` required), ntk_gram (on the batch's
inputs), weight_spectrum, gradient_noise_scale (options `small_batch`,
`big_batch` required; the batch is the data set it samples from),
local_learning_coefficient (the batch is the data set), loss_barrier (from the
model's parameters to option `theta1`, a flat vector or state dict).
Not included: linear_cka (needs two activation matrices, not a model and a batch;
call `lmech.observables.cka.linear_cka` on `collect_activations` outputs).
"""

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.observables._json import JsonResult, to_jsonable
from lmech.observables.effective_dimensionality import effective_dimensionality
from lmech.observables.gradient_noise_scale import gradient_noise_scale
from lmech.observables.hessian_trace import hessian_trace
from lmech.observables.local_learning_coefficient import local_learning_coefficient
from lmech.observables.loss_barrier import loss_barrier
from lmech.observables.ntk import ntk_gram
from lmech.observables.preconditioned_sharpness import preconditioned_sharpness
from lmech.observables.sharpness import sharpness
from lmech.observables.spectral_density import hessian_spectral_density
from lmech.observables.weight_spectrum import weight_spectrum

__all__ = ["Instrument", "INSTRUMENTS", "Measurement", "measure", "instrument_rows", "check_request"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Instrument:
    """A registry row of a standalone instrument.

    Attributes:
        name: the name `measure` takes.
        function: the public instrument; its keyword-only parameters are the options.
        call: (function, model, loss_fn, batch, options) -> result, the adapter
            from measure's uniform arguments to the instrument's own.
        headline: the tidy column that is "the" value (None: no scalar headline).
        vectors: 1-D array fields expanded into rows `<field>/<i>`.
        cost: rough cost in HVPs / gradients / forward passes.
    """

    name: str
    function: Callable
    call: Callable[..., JsonResult]
    headline: str | None
    vectors: tuple[str, ...]
    cost: str


def _plain(f, model, loss_fn, batch, options):
    return f(model, loss_fn, batch, **options)


def _ntk(f, model, loss_fn, batch, options):
    del loss_fn
    return f(model, batch[0], **options)


def _model_only(f, model, loss_fn, batch, options):
    del loss_fn, batch
    return f(model, **options)


def _barrier(f, model, loss_fn, batch, options):
    options = dict(options)
    options.setdefault("theta0", {n: p.detach() for n, p in model.named_parameters()})
    return f(model, loss_fn, batch, **options)


# Leading parameters each adapter fills itself; the rest of the signature are options.
_SUPPLIED = {_plain: 3, _ntk: 2, _model_only: 1, _barrier: 3}


INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument("sharpness", sharpness, _plain, "eigenvalues/0",
               ("eigenvalues", "residual_bounds", "error_bounds"), "one Lanczos run, ~10-30 HVPs"),
    Instrument("preconditioned_sharpness", preconditioned_sharpness, _plain, "eigenvalues/0",
               ("eigenvalues", "residual_bounds", "error_bounds"), "one Lanczos run on P^-1/2 H P^-1/2"),
    Instrument("hessian_trace", hessian_trace, _plain, "estimate", (), "num_probes HVPs"),
    Instrument("spectral_density", hessian_spectral_density, _plain, None, (),
               "num_probes x lanczos_steps HVPs"),
    Instrument("effective_dimensionality", effective_dimensionality, _plain, "n_eff", ("eigenvalues",),
               "one Lanczos run for the top k"),
    Instrument("ntk_gram", ntk_gram, _ntk, None, (), "N x C per-sample gradients"),
    Instrument("weight_spectrum", weight_spectrum, _model_only, None, (),
               "one Gram eigendecomposition per weight matrix"),
    Instrument("gradient_noise_scale", gradient_noise_scale, _plain, "b_simple", (),
               "2 x num_pairs gradients"),
    Instrument("local_learning_coefficient", local_learning_coefficient, _plain, "estimate", (),
               "num_chains x num_steps gradients"),
    Instrument("loss_barrier", loss_barrier, _barrier, "barrier", (), "num_points forward passes"),
)}


def _signature_options(instrument: Instrument) -> tuple[set[str], set[str]]:
    """(allowed option names, required ones) from the instrument's keyword parameters."""
    params = list(inspect.signature(instrument.function).parameters.values())[_SUPPLIED[instrument.call]:]
    allowed = {p.name for p in params}
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    if instrument.call is _barrier:
        required.discard("theta0")  # defaults to the model's own parameters
    return allowed, required


def _check_options(instrument: Instrument, options: Mapping[str, Any]) -> None:
    allowed, required = _signature_options(instrument)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for {instrument.name}; "
                         f"known: {', '.join(sorted(allowed)) or 'none'}")
    missing = sorted(required - set(options))
    if missing:
        raise InputError(f"{instrument.name} needs option(s) {', '.join(missing)}, "
                         f"e.g. {instrument.name}={{'{missing[0]}': ...}}")


def instrument_rows(name: str, result: JsonResult) -> list[tuple[str, float]]:
    """Tidy (column, value) scalar rows of one instrument result.

    Scalar fields (numbers, bools as 0/1) give one row each; nested dicts give
    `<field>/<key>/...` columns; the registry's `vectors` fields give `<field>/<i>`;
    other arrays and strings are left out (they are in `to_json()`).
    """
    vectors = INSTRUMENTS[name].vectors if name in INSTRUMENTS else ()
    rows: list[tuple[str, float]] = []

    def walk(prefix: str, value: Any, expand: bool) -> None:
        if isinstance(value, bool | int | float):
            rows.append((prefix, float(value)))
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}/{key}", inner, False)
        elif expand and isinstance(value, list) and all(isinstance(v, bool | int | float) for v in value):
            for i, inner in enumerate(value):
                rows.append((f"{prefix}/{i}", float(inner)))

    for field, value in result.to_json().items():
        walk(field, value, field in vectors)
    return rows


@dataclass(frozen=True)
class Measurement(Mapping):
    """Results of `measure`: a read-only mapping observable name -> instrument result.

    `to_json()` gives one object keyed by observable name (scalars as numbers,
    arrays as nested lists); `rows()` gives tidy (observable, column, value) rows
    of the scalars (see `instrument_rows`).
    """

    results: dict[str, JsonResult]

    def __getitem__(self, name: str) -> JsonResult:
        return self.results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def to_json(self) -> dict[str, Any]:
        """{observable: result.to_json()}."""
        return {name: to_jsonable(result) for name, result in self.results.items()}

    def rows(self) -> list[tuple[str, str, float]]:
        """[(observable, column, value)] for every scalar of every result."""
        return [(name, column, value) for name, result in self.results.items()
                for column, value in instrument_rows(name, result)]

    def headline(self, name: str) -> float | None:
        """The instrument's headline scalar (e.g. sharpness -> top eigenvalue), or None."""
        column = INSTRUMENTS[name].headline
        return None if column is None else dict(instrument_rows(name, self.results[name])).get(column)


def check_request(observables: list[str] | tuple[str, ...] | str,
                  options: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Validate names and per-instrument options without measuring; returns the names as a list.

    Raises:
        InputError: unknown or repeated names, options for names not requested,
            unknown option keys, missing required options.
    """
    names = [n.strip() for n in observables.split(",")] if isinstance(observables, str) else list(observables)
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown or not names:
        raise InputError(f"unknown observable(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(INSTRUMENTS)}")
    if len(set(names)) != len(names):
        raise InputError(f"observable listed twice: {', '.join(names)}")
    stray = sorted(set(options) - set(names))
    if stray:
        raise InputError(f"options given for {', '.join(stray)}, which is not requested; "
                         f"requested: {', '.join(names)}")
    for name in names:
        _check_options(INSTRUMENTS[name], options.get(name) or {})
    return names


def measure(model: torch.nn.Module, loss_fn: LossFn, batch: tuple[Tensor, Tensor],
            observables: list[str] | tuple[str, ...] | str, *, seed: int | None = None,
            **options: Mapping[str, Any]) -> Measurement:
    """Measure the named instruments on (model, loss_fn, batch).

    Args:
        model: any nn.Module; never modified (instruments use functional_call).
        loss_fn: (outputs (N, C), targets (N, ...)) -> scalar, mean over the batch.
        batch: (inputs (N, ...), targets (N, ...)); for gradient_noise_scale and
            local_learning_coefficient it is the data set they sample from.
        observables: names from INSTRUMENTS (a list, or one comma-separated string).
        seed: if given, passed as `seed=` to every instrument that takes one,
            unless its options set it.
        **options: per instrument, a dict of its keyword options, e.g.
            `sharpness={"k": 3}`, `effective_dimensionality={"z": 1e-3}`.

    Returns:
        Measurement mapping each name (in the order given) to its result.

    Raises:
        InputError: unknown observable (the message lists the known ones),
            options for an instrument not requested, unknown or missing options.

    Algorithm:
        Each instrument runs once, independently (costs add; see INSTRUMENTS[name].cost).
        Included: sharpness, preconditioned_sharpness, hessian_trace,
        spectral_density, effective_dimensionality, ntk_gram, weight_spectrum,
        gradient_noise_scale, local_learning_coefficient, loss_barrier. Not
        included: linear_cka (two activation matrices, not a model).

    Failure modes:
        Each instrument's own (see its docstring); errors raised by an
        instrument for bad values (e.g. k > P) propagate unchanged.
    """
    names = check_request(observables, options)
    results = {}
    for name in names:
        instrument = INSTRUMENTS[name]
        chosen = dict(options.get(name) or {})
        if seed is not None and "seed" in _signature_options(instrument)[0]:
            chosen.setdefault("seed", seed)
        results[name] = instrument.call(instrument.function, model, loss_fn, batch, chosen)
    return Measurement(results)
