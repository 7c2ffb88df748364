"""Second-order instruments scheduled inside lmech's trainers (`observe: {sharpness: {k: 1}}`).

Each wraps a standalone instrument (which takes one nn.Module) and loops over the
K ensemble members, so it costs K times one model's measurement; HVP-based
instruments are not vectorized over K (each member's Lanczos run stops at its
own convergence). Measured on the member's full training set.
"""

import torch
from torch import Tensor

from lmech.observables._member import members
from lmech.observables.hessian_trace import hessian_trace
from lmech.observables.preconditioned_sharpness import preconditioned_sharpness
from lmech.observables.sharpness import sharpness
from lmech.seeding import child_seed
from lmech.train.loop import TrainState

__all__ = ["scheduled_sharpness", "scheduled_preconditioned_sharpness", "scheduled_hessian_trace"]


def _seed(state: TrainState, member: int, purpose: str) -> int:
    """Probe seed from the run's own seed and the step: the same alone or inside any ensemble."""
    return child_seed(state.specs[member].seed, f"{purpose}@{state.step}") % (1 << 31)


def _stack(columns: dict[str, list[float]]) -> dict[str, Tensor]:
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in columns.items()}


def scheduled_sharpness(state: TrainState, k: int = 1, rel_tol: float = 1e-4, max_iter: int = 100) -> dict[str, Tensor]:
    """sharpness (top eigenvalue), sharpness/<i> for i < k, sharpness_hvps: per member (K,)."""
    columns: dict[str, list[float]] = {}
    for member, module, loss_fn, batch in members(state):
        result = sharpness(module, loss_fn, batch, k=k, rel_tol=rel_tol, max_iter=max_iter,
                           seed=_seed(state, member, "sharpness"))
        columns.setdefault("sharpness", []).append(float(result.eigenvalues[0]))
        for i in range(1, k):  # fewer than k values when the Krylov space closes early (e.g. H = cI)
            value = float(result.eigenvalues[i]) if i < len(result.eigenvalues) else float("nan")
            columns.setdefault(f"sharpness/{i}", []).append(value)
        columns.setdefault("sharpness_hvps", []).append(float(result.hvp_count))
    return _stack(columns)


def scheduled_preconditioned_sharpness(state: TrainState, rel_tol: float = 1e-4, max_iter: int = 100) -> dict[str, Tensor]:
    """preconditioned_sharpness (K,): top eigenvalue of P^-1 H with Adam's P = sqrt(v_hat) + eps.

    Source: Cohen et al. 2022 (adaptive edge of stability). Needs optimizer adam/adamw;
    at step 0 (no second moments yet) it is NaN.
    """
    if state.optimizer == "sgd":
        raise ValueError("preconditioned_sharpness needs optimizer adam or adamw")
    spec = state.specs[0].optimizer
    values = []
    for member, module, loss_fn, batch in members(state):
        if state.step == 0:
            values.append(float("nan"))
            continue
        correction = 1 - spec.beta2 ** state.step
        momentum_correction = 1 - spec.beta1 ** state.step  # Cohen et al. 2022: P_t = (1 - b1^t) diag(sqrt(v_hat) + eps)
        diagonal = {f"weights.{name}": momentum_correction * ((v[member] / correction).sqrt() + spec.eps)
                    for name, v in state.optimizer_state["exp_avg_sq"].items()}
        # The learning-rate multipliers of the parameterization scale each block's step.
        diagonal = {name: d / state.lr_multipliers.get(name.split(".", 1)[1], 1.0) for name, d in diagonal.items()}
        result = preconditioned_sharpness(module, loss_fn, batch, diagonal, rel_tol=rel_tol,
                                          max_iter=max_iter, seed=_seed(state, member, "preconditioned_sharpness"))
        values.append(float(result.eigenvalues[0]))
    return {"preconditioned_sharpness": torch.tensor(values, dtype=torch.float64)}


def scheduled_hessian_trace(state: TrainState, num_probes: int = 20) -> dict[str, Tensor]:
    """hessian_trace and hessian_trace_se (K,): Hutchinson estimate and its standard error."""
    columns: dict[str, list[float]] = {}
    for member, module, loss_fn, batch in members(state):
        result = hessian_trace(module, loss_fn, batch, num_probes=num_probes,
                              seed=_seed(state, member, "hessian_trace"))
        columns.setdefault("hessian_trace", []).append(result.estimate)
        columns.setdefault("hessian_trace_se", []).append(result.standard_error)
    return _stack(columns)
