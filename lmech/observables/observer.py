"""The one adapter that schedules any registry entry inside lmech's trainer (`observe:` in a run spec).

One job: from a spec's observe section, validate every name and option up front
(before any training: a typo is one line, never a TypeError mid-sweep), and give
the trainer a callback that measures what is due at each step, as {metric name:
(K,) tensor}. Trainer-scope entries see the whole state; model-scope entries
(pure instruments) are measured on each member in turn (K times one model's
cost; HVP-based instruments stop at each member's own convergence, so they are
not vectorized over K), on the member's full training set, seeded from the
member's run seed and the step, so a member's value is the same alone and
inside any ensemble. It ignores where rows go (the engine stores them).
"""

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from lmech.observables._member import members
from lmech.observables.registry import Entry, get_entry, result_rows, validate_options
from lmech.seeding import child_seed
from lmech.spec import ObserveSpec

__all__ = ["plan_observations", "make_observer", "measure_members"]


def plan_observations(observe: Mapping[str, ObserveSpec], total_steps: int) -> list[tuple[Entry, set[int], dict]]:
    """[(entry, steps, options)] for every observed name, validated.

    Raises:
        InputError: an unknown name, an entry that cannot be scheduled, or a bad option.
    """
    from lmech.train.schedule import observation_steps

    plan = []
    for name, when in observe.items():
        entry = get_entry(name, "observe")
        options = validate_options(entry, when.options(), supplied=entry.state_options)
        plan.append((entry, set(observation_steps(when.every, when.count, total_steps)), options))
    return plan


def measure_members(entry: Entry, state, options: Mapping[str, Any]) -> dict[str, Tensor]:
    """A model-scope entry on every member: {metric name: (K,) float64}, NaN where a member has no value."""
    per_member: list[dict[str, float]] = []
    takes_seed = "seed" in entry.options.model_fields
    for k, module, loss_fn, batch in members(state):
        chosen = dict(options)
        if entry.from_state is not None:
            extra = entry.from_state(state, k)
            if extra is None:
                per_member.append({})
                continue
            chosen.update(extra)
        if takes_seed and "seed" not in chosen:
            chosen["seed"] = child_seed(state.specs[k].seed, f"{entry.name}@{state.step}") % (1 << 31)
        per_member.append(result_rows(entry, entry.call(entry.function, module, loss_fn, batch, chosen)))
    names = list(dict.fromkeys(n for rows in per_member for n in rows))
    if not names and entry.headline is not None:  # nothing measurable yet (no Adam moments at step 0)
        names = [f"{entry.name}/{entry.headline}"]
    return {n: torch.tensor([rows.get(n, float("nan")) for rows in per_member], dtype=torch.float64) for n in names}


def _trainer_rows(entry: Entry, state, options: Mapping[str, Any]) -> dict[str, Tensor]:
    return {f"{entry.name}/{field}": value for field, value in entry.function(state, **options).items()}


def make_observer(observe: Mapping[str, ObserveSpec], total_steps: int) -> tuple[Callable, set[int]]:
    """(observer, steps): observer(state) computes the entries due at state.step; steps is their union."""
    plan = plan_observations(observe, total_steps)

    def observer(state) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {}
        for entry, steps, options in plan:
            if state.step in steps:
                measure = measure_members if entry.scope == "model" else _trainer_rows
                values.update(measure(entry, state, options))
        return values

    return observer, set().union(*(steps for _, steps, _ in plan))
