"""Instruments: functions of (model, parameters, batch) -> numbers.

Two kinds live here. Trainer observables take a `TrainState` (all K members)
and return {column: (K,) tensor}; they are scheduled from a spec's `observe`
section. Standalone instruments take any nn.Module + loss + batch and return a
frozen result; `measure` runs them by name.

Adding one: a file with one public function, plus one row in OBSERVABLES.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from lmech.errors import InputError
from lmech.observables.accuracy import accuracy
from lmech.observables.activation_scale import activation_scale
from lmech.observables.coefficient_error import coefficient_error
from lmech.observables.grad_norm import grad_norm
from lmech.observables.loss import loss
from lmech.observables.measure import measure
from lmech.observables.mode_strength import mode_strength
from lmech.observables.param_norm import param_norm
from lmech.observables.relative_update import relative_update
from lmech.observables.ridgeless_loss import ridgeless_loss
from lmech.observables.scheduled_noise_scale import scheduled_gradient_noise_scale
from lmech.observables.scheduled import (
    scheduled_hessian_trace,
    scheduled_preconditioned_sharpness,
    scheduled_sharpness,
)

__all__ = ["Observable", "OBSERVABLES", "get_observable", "make_observer", "measure",
           "loss", "accuracy", "param_norm", "grad_norm", "relative_update", "mode_strength",
           "coefficient_error", "activation_scale", "ridgeless_loss"]


@dataclass(frozen=True)
class Observable:
    """A registry row: the trainer-side function and what it writes."""

    name: str
    function: Callable
    columns: str
    cost: str
    example: dict = field(default_factory=dict)  # run-spec fields of a run it applies to (contract suite)


OBSERVABLES: dict[str, Observable] = {o.name: o for o in (
    Observable("loss", loss, "train_loss, test_loss (train: false -> test_loss only)", "2 forward passes"),
    Observable("accuracy", accuracy, "train_accuracy, test_accuracy", "2 forward passes"),
    Observable("param_norm", param_norm, "param_norm/<param>, param_norm/total", "O(P)"),
    Observable("grad_norm", grad_norm, "grad_norm", "1 forward + backward"),
    Observable("relative_update", relative_update, "relative_update/<param>", "O(P)"),
    Observable("coefficient_error", coefficient_error, "coefficient_error", "O(K P)",
               {"task": {"name": "gaussian_regression", "input_dim": 6},
                "model": {"depth": 0, "activation": "linear", "bias": False}}),
    Observable("sharpness", scheduled_sharpness, "sharpness, sharpness/<i>, sharpness_hvps",
               "K Lanczos runs, ~20 HVPs each"),
    Observable("preconditioned_sharpness", scheduled_preconditioned_sharpness, "preconditioned_sharpness",
               "K Lanczos runs on P^-1/2 H P^-1/2", {"optimizer": {"name": "adam", "lr": 0.001}}),
    Observable("hessian_trace", scheduled_hessian_trace, "hessian_trace, hessian_trace_se",
               "K x num_probes HVPs"),
    Observable("mode_strength", mode_strength, "mode_strength/<r>", "one product of layer matrices",
               {"task": {"name": "deep_linear"},
                "model": {"kind": "deep_linear", "activation": "linear", "bias": False, "depth": 1}}),
    Observable("activation_scale", activation_scale, "activation_scale/<layer>", "1 forward pass"),
    Observable("gradient_noise_scale", scheduled_gradient_noise_scale, "b_simple, grad_norm_sq, trace_sigma",
               "K x num_pairs x (small_batch + big_batch) per-example gradients"),
    Observable("ridgeless_loss", ridgeless_loss, "ridgeless_loss, population_loss",
               "K float64 lstsq of (P, N) + O(K N M)",
               {"task": {"name": "power_law_features", "n_train": 24, "n_features": 12, "latent_dim": 50},
                "model": {"depth": 0, "activation": "linear", "bias": False}}),
)}


def get_observable(name: str) -> Observable:
    if name not in OBSERVABLES:
        raise InputError(f"unknown observable '{name}'; known: {', '.join(sorted(OBSERVABLES))}")
    return OBSERVABLES[name]


def make_observer(observe: dict, total_steps: int):
    """From a spec's observe section, the trainer callback and the set of steps it needs.

    Returns (observer, steps): observer(state) computes the observables due at state.step.
    """
    from lmech.train.schedule import observation_steps

    plan = {}
    for name, when in observe.items():
        observable = get_observable(name)
        plan[name] = (observable, set(observation_steps(when.every, when.count, total_steps)), when.options())

    def observer(state):
        values = {}
        for observable, steps, options in plan.values():
            if state.step in steps:
                values.update(observable.function(state, **options))
        return values

    steps = set().union(*(s for _, s, _ in plan.values())) if plan else set()
    return observer, steps
