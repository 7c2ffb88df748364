"""The one registry of measurements: every instrument and trainer observable, by name.

One job: a table of rows, each naming its function, its options (validated types
and ranges, as a strict pydantic model built from the function's signature), its
result type, how a result becomes metric rows, its cost, and the entry points it
serves. Every entry point reads this table: `lmech.measure` and `lmech measure`
(model scope), the Recorder (model scope), and `observe:` in run specs (both
scopes, through one generic adapter, `lmech.observables.observer`).

Two scopes:
    model: a pure instrument of (model, loss, batch) from `lmech.instruments`. In a
        run it is measured on each ensemble member (a module holding a copy of its
        parameters) on the member's full training set, seeded from the run seed
        and the step, so the value is the same alone and inside any ensemble.
    trainer: a function of the trainer's state (all K members at once), e.g. the
        loss; it returns {field: (K,) tensor}.

Metric names follow one convention everywhere a row is written:
`<entry>/<field>[/<index>]`, e.g. `loss/train`, `sharpness/eigenvalues/0`,
`hessian_trace/estimate`, `gradient_noise_scale/b_simple`, `param_norm/W0`.

Adding one: a file with one public function (in `instruments/` for model scope,
`observables/` for trainer scope), one row below, one test.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from lmech.errors import InputError
from lmech.instruments._json import JsonResult
from lmech.instruments.critical_batch_forecast import CriticalBatchForecast, critical_batch_forecast
from lmech.instruments.effective_dimensionality import EffectiveDimensionality, effective_dimensionality
from lmech.instruments.gradient_noise_scale import GradientNoiseScale, gradient_noise_scale
from lmech.instruments.hessian_trace import HessianTrace, hessian_trace
from lmech.instruments.local_learning_coefficient import LocalLearningCoefficient, local_learning_coefficient
from lmech.instruments.loss_barrier import LossBarrier, loss_barrier
from lmech.instruments.ntk import NTKGram, ntk_gram
from lmech.instruments.preconditioned_sharpness import PreconditionedSharpness, preconditioned_sharpness
from lmech.instruments.sharpness import Sharpness, sharpness
from lmech.instruments.spectral_density import SpectralDensity, hessian_spectral_density
from lmech.instruments.weight_spectrum import WeightSpectrum, weight_spectrum
from lmech.observables.accuracy import accuracy
from lmech.observables.activation_scale import activation_scale
from lmech.observables.coefficient_error import coefficient_error
from lmech.observables.grad_norm import grad_norm
from lmech.observables.loss import loss
from lmech.observables.mode_strength import mode_strength
from lmech.observables.param_norm import param_norm
from lmech.observables.relative_update import relative_update
from lmech.observables.ridgeless_loss import ridgeless_loss

__all__ = ["Entry", "REGISTRY", "ENTRY_POINTS", "get_entry", "validate_options", "result_rows", "EntryPoint"]

EntryPoint = Literal["measure", "recorder", "observe"]
ENTRY_POINTS: tuple[EntryPoint, ...] = ("measure", "recorder", "observe")


def _plain(f, model, loss_fn, batch, options):
    return f(model, loss_fn, batch, **options)


def _inputs_only(f, model, loss_fn, batch, options):
    del loss_fn
    return f(model, batch[0], **options)


def _model_only(f, model, loss_fn, batch, options):
    del loss_fn, batch
    return f(model, **options)


def _from_own_parameters(f, model, loss_fn, batch, options):
    options = dict(options)
    options.setdefault("theta0", {n: p.detach() for n, p in model.named_parameters()})
    return f(model, loss_fn, batch, **options)


# Leading parameters each adapter fills itself; the rest of the signature are the options.
_SUPPLIED = {_plain: 3, _inputs_only: 2, _model_only: 1, _from_own_parameters: 3}
_OPTIONS_CONFIG = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True, allow_inf_nan=False,
                             frozen=True)


def _options_model(name: str, function: Callable, skip: int, bounds: Mapping[str, Mapping[str, Any]],
                   optional: tuple[str, ...]) -> type[BaseModel]:
    """A strict pydantic model of `function`'s options: its parameters after the first `skip`,
    with their annotations and defaults, plus the row's bounds (e.g. {"k": {"ge": 1}})."""
    fields = {}
    for parameter in list(inspect.signature(function).parameters.values())[skip:]:
        annotation = Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
        default = parameter.default
        if default is inspect.Parameter.empty and parameter.name in optional:
            default = None
            annotation = annotation | None
        fields[parameter.name] = (annotation, Field(... if default is inspect.Parameter.empty else default,
                                                    **dict(bounds.get(parameter.name, {}))))
    return create_model(f"{name}_options", __config__=_OPTIONS_CONFIG, **fields)


@dataclass(frozen=True)
class Entry:
    """One row of the registry.

    Attributes:
        name: the name every entry point takes; the prefix of its metric names.
        scope: "model" (a pure instrument) or "trainer" (a function of the trainer state).
        function: the public function.
        result: its result type (a JsonResult dataclass; dict for trainer scope).
        fields: the metric fields it writes, for the README ("<field>" after "<name>/").
        cost: rough cost in HVPs / gradients / forward passes.
        call: model scope: (function, model, loss_fn, batch, options) -> result.
        headline: the field that is "the" value (e.g. "eigenvalues/0" for sharpness), or None.
        vectors: 1-D array fields written as `<name>/<field>/<i>`.
        scalars: extra derived scalar fields from a result (e.g. the NTK's trace).
        unavailable: entry point -> why this entry cannot serve it (declared, tested).
        from_state: trainer-side options a scheduled model-scope entry takes from the
            state: (state, member) -> options, or None when it cannot be measured yet.
        state_options: the option names `from_state` supplies (not required in observe:).
        options: the validated options model (built from the signature).
        example: run-spec fields of a run it applies to (contract suite).
    """

    name: str
    scope: Literal["model", "trainer"]
    function: Callable
    result: type
    fields: str
    cost: str
    call: Callable | None = None
    headline: str | None = None
    vectors: tuple[str, ...] = ()
    scalars: Callable[[Any], dict[str, float]] | None = None
    unavailable: Mapping[str, str] = field(default_factory=dict)
    from_state: Callable | None = None
    state_options: tuple[str, ...] = ()
    options: type[BaseModel] = BaseModel
    example: Mapping[str, Any] = field(default_factory=dict)


def _entry(name, scope, function, result, fields, cost, *, call=None, bounds=None, optional=(), **rest) -> Entry:
    skip = _SUPPLIED[call] if scope == "model" else 1
    options = _options_model(name, function, skip, bounds or {}, optional)
    return Entry(name, scope, function, result, fields, cost, call=call, options=options, **rest)


def _adam_preconditioner(state, member: int) -> dict[str, Any] | None:
    """Adam's diagonal P = (1 - beta1^t) (sqrt(v_hat) + eps) / lr multiplier for one member
    (Cohen et al. 2022, adaptive edge of stability, Sec. 2), or None at step 0 (no moments yet)."""
    if state.optimizer not in ("adam", "adamw"):  # other optimizers' buffers mean something else
        raise InputError(f"preconditioned_sharpness needs optimizer adam or adamw (Adam's preconditioner); "
                         f"this run uses {state.optimizer}")
    if state.step == 0:
        return None
    spec = state.specs[0].optimizer
    correction = 1 - spec.beta2 ** state.step
    momentum_correction = 1 - spec.beta1 ** state.step
    prefix = "weights." if state.stacked is None else ""  # the MLP's MemberModule names; other families: as trained
    return {"preconditioner": {
        f"{prefix}{name}": momentum_correction * ((v[member] / correction).sqrt() + spec.eps)
        / state.lr_multipliers.get(name, 1.0)
        for name, v in state.optimizer_state["exp_avg_sq"].items()}}


def _ntk_scalars(result: NTKGram) -> dict[str, float]:
    gram = result.gram
    if result.contraction == "full":
        diagonal = torch.diagonal(torch.diagonal(gram), dim1=0, dim2=1).sum(-1) if gram.shape[0] == gram.shape[1] else None
    elif result.contraction == "diagonal":
        diagonal = torch.diagonal(gram).sum(0) if gram.shape[0] == gram.shape[1] else None
    else:
        diagonal = torch.diagonal(gram) if gram.shape[0] == gram.shape[1] else None
    out = {"frobenius": float(torch.linalg.vector_norm(gram.double()))}
    if diagonal is not None:
        out["trace"] = float(diagonal.double().sum())
    return out


_TRAINER_ONLY = "needs the trainer's state (all members, the task); schedule it with observe: in a run spec"
_LANCZOS = {"k": {"ge": 1}, "rel_tol": {"gt": 0}, "max_iter": {"ge": 1}}

REGISTRY: dict[str, Entry] = {e.name: e for e in (
    # model scope: pure instruments
    _entry("sharpness", "model", sharpness, Sharpness, "eigenvalues/<i>, residual_bounds/<i>, error_bounds/<i>, "
           "hvp_count, converged, loss", "one Lanczos run, ~10-30 HVPs", headline="eigenvalues/0", call=_plain,
           vectors=("eigenvalues", "residual_bounds", "error_bounds"), bounds=_LANCZOS),
    _entry("preconditioned_sharpness", "model", preconditioned_sharpness, PreconditionedSharpness,
           "eigenvalues/<i>, residual_bounds/<i>, error_bounds/<i>, hvp_count, converged",
           "one Lanczos run on P^-1/2 H P^-1/2", headline="eigenvalues/0", call=_plain,
           vectors=("eigenvalues", "residual_bounds", "error_bounds"), bounds=_LANCZOS,
           from_state=_adam_preconditioner, state_options=("preconditioner",), example={"optimizer": {"name": "adam", "lr": 0.001}}),
    _entry("hessian_trace", "model", hessian_trace, HessianTrace, "estimate, standard_error, num_probes, converged",
           "num_probes HVPs", headline="estimate", call=_plain,
           bounds={"num_probes": {"ge": 1}, "min_probes": {"ge": 1}, "probe_batch": {"ge": 1}}),
    _entry("hessian_spectral_density", "model", hessian_spectral_density, SpectralDensity, "sigma, hvp_count",
           "num_probes x lanczos_steps HVPs", call=_plain,
           bounds={"num_probes": {"ge": 1}, "lanczos_steps": {"ge": 2}, "grid_size": {"ge": 2}}),
    _entry("effective_dimensionality", "model", effective_dimensionality, EffectiveDimensionality,
           "n_eff, z, eigenvalues/<i>, n_negative, converged", "one Lanczos run for the top k", headline="n_eff", call=_plain,
           vectors=("eigenvalues",), bounds={**_LANCZOS, "z": {"gt": 0}}),
    _entry("ntk_gram", "model", ntk_gram, NTKGram, "trace, frobenius (the Gram itself in measure's JSON)",
           "N x C per-sample gradients", headline="trace", call=_inputs_only, scalars=_ntk_scalars,
           bounds={"chunk_size": {"ge": 1}, "cache_floats": {"ge": 1}}),
    _entry("weight_spectrum", "model", weight_spectrum, WeightSpectrum,
           "layers/<param>/{alpha, alpha_standard_error, xmin, ks_distance, n_tail, fitted}",
           "one Gram eigendecomposition per weight matrix", call=_model_only,
           bounds={"min_eigenvalues": {"ge": 2}, "min_tail": {"ge": 2}}),
    _entry("gradient_noise_scale", "model", gradient_noise_scale, GradientNoiseScale,
           "b_simple, grad_norm_sq, trace_sigma, grad_norm_sq_se, trace_sigma_se, num_pairs, small_batch, big_batch",
           "2 x num_pairs gradients", headline="b_simple", call=_plain,
           bounds={"small_batch": {"ge": 1}, "big_batch": {"ge": 2}, "num_pairs": {"ge": 1}}),
    _entry("critical_batch_forecast", "model", critical_batch_forecast, CriticalBatchForecast,
           "b_simple, b_simple_se, b_crit, b_crit_lo, b_crit_hi, grad_norm_sq, trace_sigma, resolved",
           "2 x num_pairs gradients", headline="b_crit", call=_plain,
           bounds={"small_batch": {"ge": 1}, "big_batch": {"ge": 2}, "num_pairs": {"ge": 2}}),
    _entry("local_learning_coefficient", "model", local_learning_coefficient, LocalLearningCoefficient,
           "estimate, standard_error, init_loss, n, beta, epsilon, gamma, num_steps, num_burnin, batch_size",
           "num_chains x num_steps gradients", headline="estimate", call=_plain,
           bounds={"epsilon": {"gt": 0}, "gamma": {"ge": 0}, "num_chains": {"ge": 1}, "num_steps": {"ge": 1},
                   "num_burnin": {"ge": 0}, "batch_size": {"ge": 1}}),
    _entry("loss_barrier", "model", loss_barrier, LossBarrier, "barrier, barrier_alpha, barrier_mean_endpoints",
           "num_points forward passes", headline="barrier", call=_from_own_parameters, optional=("theta0",),
           bounds={"num_points": {"ge": 2}},
           unavailable={"observe": "needs a second set of parameters (theta1), which a run spec cannot give"}),
    # trainer scope
    _entry("loss", "trainer", loss, dict, "train, test (train: false -> test only)", "2 forward passes",
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("accuracy", "trainer", accuracy, dict, "train, test", "2 forward passes",
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("param_norm", "trainer", param_norm, dict, "<param>, total", "O(P)",
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("grad_norm", "trainer", grad_norm, dict, "total", "1 forward + backward",
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("relative_update", "trainer", relative_update, dict, "<param>", "O(P)",
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("activation_scale", "trainer", activation_scale, dict,
           "<layer> (mlp: 0..L-1; other families: each module's qualified name, and output)",
           "1 stacked forward pass (mlp); K member forward passes with hooks (other families)",
           bounds={"max_examples": {"ge": 1}},
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("mode_strength", "trainer", mode_strength, dict, "<r>", "one product of layer matrices",
           example={"task": {"name": "deep_linear"},
                    "model": {"kind": "deep_linear", "activation": "linear", "bias": False, "depth": 1}},
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("coefficient_error", "trainer", coefficient_error, dict, "value", "O(K P)",
           example={"task": {"name": "gaussian_regression", "input_dim": 6},
                    "model": {"depth": 0, "activation": "linear", "bias": False}},
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
    _entry("ridgeless_loss", "trainer", ridgeless_loss, dict, "min_norm, model", "K float64 lstsq of (P, N) + O(K N M)",
           example={"task": {"name": "power_law_features", "n_train": 24, "n_features": 12, "latent_dim": 50},
                    "model": {"depth": 0, "activation": "linear", "bias": False}},
           unavailable={"measure": _TRAINER_ONLY, "recorder": _TRAINER_ONLY}),
)}


def get_entry(name: str, entry_point: EntryPoint | None = None) -> Entry:
    """The row called `name`, checked usable from `entry_point`.

    Raises:
        InputError: unknown name (the message lists the known ones), or an entry
            that cannot serve that entry point (the message says why).
    """
    if name not in REGISTRY:
        usable = sorted(n for n, e in REGISTRY.items() if entry_point is None or entry_point not in e.unavailable)
        raise InputError(f"unknown observable '{name}'; known: {', '.join(usable)}")
    entry = REGISTRY[name]
    if entry_point is not None and entry_point in entry.unavailable:
        raise InputError(f"{name} cannot be used in {entry_point}: {entry.unavailable[entry_point]}")
    return entry


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_options(entry: Entry, options: Mapping[str, Any] | None, *, supplied: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options of one entry, validated (types, ranges, unknown keys); returns those given.

    supplied: option names the caller fills itself (e.g. the scheduled adapter's
    preconditioner), exempt from "required".

    Raises:
        InputError: one line naming the entry, the option and the problem.
    """
    options = dict(options or {})
    fields = entry.options.model_fields
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for {entry.name}; "
                         f"known: {', '.join(sorted(fields)) or 'none'}")
    try:
        entry.options.model_validate(options)
    except ValidationError as error:
        errors = [e for e in error.errors() if not (e["type"] == "missing" and e["loc"][0] in supplied)]
        if not errors:
            return options
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "missing":
            raise InputError(f"{entry.name} needs option {where}, e.g. {entry.name}={{'{where}': ...}}") from None
        got = f" (got {_short(first['input'])})" if "input" in first and not isinstance(first["input"], dict) else ""
        raise InputError(f"{entry.name}.{where}: {first['msg']}{got}") from None
    return options


def result_rows(entry: Entry, result: JsonResult) -> dict[str, float]:
    """A model-scope result as metric rows {"<name>/<field>[/<i>]": value}.

    Scalar fields (numbers, bools as 0/1) give one row each; nested dicts give
    `<field>/<key>/...`; the entry's `vectors` give `<field>/<i>`; other arrays
    and strings are left out (they are in `to_json()`); `scalars` adds derived rows.
    Non-finite values are kept as NaN/inf floats (the store and JSON output map them to null).
    """
    rows: dict[str, float] = {}

    def walk(prefix: str, value: Any, expand: bool) -> None:
        if isinstance(value, bool | int | float):
            rows[prefix] = float(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}/{key}", inner, False)
        elif expand and isinstance(value, list) and all(isinstance(v, bool | int | float) for v in value):
            for i, inner in enumerate(value):
                rows[f"{prefix}/{i}"] = float(inner)

    for name, value in result.to_json().items():
        walk(f"{entry.name}/{name}", value, name in entry.vectors)
    if entry.scalars is not None:
        rows.update({f"{entry.name}/{k}": v for k, v in entry.scalars(result).items()})
    return rows
