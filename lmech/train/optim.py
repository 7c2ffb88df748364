"""Functional optimizers over stacked parameters, with per-member hyperparameters.

Each member k has its own learning rate, weight decay and momentum ((K,) tensors);
each parameter has its own learning-rate multiplier (from the parameterization).
sgd / adam / adamw follow torch.optim.SGD / Adam / AdamW exactly (tests check this), so K=1
reproduces PyTorch's optimizers. The newer optimizers live in `lmech.train.optimizers`, one
file each, and are dispatched from `optimizer_step`:

- muon: torch.optim.Muon on the hidden weight matrices the caller names (`matrix_params`,
  from `hidden_matrices`: the family's role table), AdamW on everything else;
- lion (lion-pytorch's Lion), signsgd (with momentum: Signum);
- schedule_free_adamw (the schedulefree package's reference): the parameters hold y, the
  gradient point; the average x that the method evaluates at is `evaluation_params`';
- shampoo, soap: Kronecker-factored preconditioners, refreshed every `precondition_every` steps.

All take decoupled weight decay (W <- W - lr wd W). Their buffers appear in `state` at the
first step. Learning-rate multipliers of the "adam" family suit all of them but sgd.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.train.optimizers import (Layout, OptimizerOptions, averaging_weight, lion_update, muon_update,
                                    schedule_free_update, shampoo_update, signsgd_update, soap_update)

__all__ = ["MemberHyper", "OPTIMIZERS", "init_optimizer_state", "optimizer_step", "evaluation_params"]

OPTIMIZERS = ("sgd", "adam", "adamw", "muon", "lion", "signsgd", "schedule_free_adamw", "shampoo", "soap")


@dataclass(frozen=True)
class MemberHyper:
    """Per-member hyperparameters, each (K,) float32."""

    lr: Tensor
    weight_decay: Tensor
    momentum: Tensor

    def __post_init__(self):
        # Known once, so the step skips the ops of absent terms (tiny models are overhead-bound).
        object.__setattr__(self, "has_weight_decay", bool(self.weight_decay.any()))
        object.__setattr__(self, "has_momentum", bool(self.momentum.any()))


def init_optimizer_state(name: str, params: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """{buffer: {parameter name: (K, ...)}}; the newer optimizers start empty and fill it at step 1."""
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer '{name}'; known: {', '.join(OPTIMIZERS)}")
    if name not in ("sgd", "adam", "adamw"):
        return {}
    if name == "sgd":
        return {"momentum_buffer": {n: torch.zeros_like(p) for n, p in params.items()}}
    return {"exp_avg": {n: torch.zeros_like(p) for n, p in params.items()},
            "exp_avg_sq": {n: torch.zeros_like(p) for n, p in params.items()}}


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def optimizer_step(
    name: str,
    params: dict[str, Tensor],
    grads: dict[str, Tensor],
    state: dict[str, dict[str, Tensor]],
    hyper: MemberHyper,
    lr_factor: float,
    lr_multipliers: dict[str, float],
    step: int,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    *,
    options: OptimizerOptions | None = None,
    matrix_params: Mapping[str, Layout] | None = None,
) -> dict[str, Tensor]:
    """Update `params` in place; return the update applied to each (new - old).

    step is 1-based (Adam's bias correction). Members whose lr is 0 stay put.
    options: the newer optimizers' settings (default OptimizerOptions()). matrix_params: for
    muon (required there), {name: layout} of the matrices it orthogonalises (`hidden_matrices`);
    every other parameter takes AdamW at lr * options.adamw_lr_ratio.
    """
    if name not in ("sgd", "adam", "adamw"):
        return _newer_step(name, params, grads, state, hyper, lr_factor, lr_multipliers, step, beta1, beta2, eps,
                           options or OptimizerOptions(), matrix_params)
    updates = {}
    for pname, param in params.items():
        grad = grads[pname]
        lr = _per_member(hyper.lr, param) * (lr_factor * lr_multipliers.get(pname, 1.0))
        wd = _per_member(hyper.weight_decay, param)
        if name == "sgd":
            if hyper.has_weight_decay:
                grad = grad + wd * param
            if hyper.has_momentum:
                buffer = state["momentum_buffer"][pname]
                if step == 1:
                    buffer.copy_(grad)
                else:  # members with momentum 0 get the plain gradient
                    buffer.mul_(_per_member(hyper.momentum, param)).add_(grad)
                grad = buffer
            delta = grad * -lr
        else:
            if name == "adam" and hyper.has_weight_decay:
                grad = grad + wd * param
            exp_avg, exp_avg_sq = state["exp_avg"][pname], state["exp_avg_sq"][pname]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            correction1 = 1 - beta1**step
            correction2 = 1 - beta2**step
            denom = (exp_avg_sq / correction2).sqrt_().add_(eps)
            delta = -(lr / correction1) * exp_avg / denom
            if name == "adamw" and hyper.has_weight_decay:
                delta = delta - lr * wd * param
        param.add_(delta)
        updates[pname] = delta
    return updates


def _newer_step(name, params, grads, state, hyper, lr_factor, lr_multipliers, step, beta1, beta2, eps,
                options: OptimizerOptions, matrix_params) -> dict[str, Tensor]:
    if name not in OPTIMIZERS:
        raise InputError(f"unknown optimizer '{name}'; known: {', '.join(OPTIMIZERS)}")
    updates: dict[str, Tensor] = {}
    rest = params
    if name == "muon":
        if matrix_params is None:
            raise InputError("muon needs matrix_params: the hidden weight matrices it orthogonalises "
                             "(lmech.train.optimizers.hidden_matrices)")
        unknown = sorted(set(matrix_params) - set(params))
        if unknown:
            raise InputError(f"matrix_params names {', '.join(unknown)}, not parameters of the model")
        rest = {n: p for n, p in params.items() if n not in matrix_params}
        for group in ("exp_avg", "exp_avg_sq"):
            buffers = state.setdefault(group, {})
            for n, p in rest.items():
                if n not in buffers:
                    buffers[n] = torch.zeros_like(p)
        updates = optimizer_step("adamw", rest, {n: grads[n] for n in rest}, state, hyper,
                                 lr_factor * options.adamw_lr_ratio, lr_multipliers, step, beta1, beta2, eps)
        rest = {n: params[n] for n in matrix_params}
    if name == "schedule_free_adamw":
        group = state.setdefault("schedule_free", {})
        for key in ("lr_max", "weight_sum"):
            if key not in group:
                group[key] = torch.zeros(hyper.lr.shape[0], dtype=torch.float64, device=hyper.lr.device)
        c = averaging_weight(group, hyper.lr * lr_factor)
    for pname, param in rest.items():
        grad = grads[pname]
        lr = _per_member(hyper.lr, param) * (lr_factor * lr_multipliers.get(pname, 1.0))
        wd = _per_member(hyper.weight_decay, param)
        momentum = _per_member(hyper.momentum, param)
        if name == "muon":
            buffer = _buffer(state, "momentum_buffer", pname, param)
            delta = muon_update(param, grad, buffer, lr, wd, momentum, matrix_params[pname], options.nesterov,
                                options.ns_steps, options.muon_lr_scale)
        elif name == "lion":
            delta = lion_update(param, grad, _buffer(state, "exp_avg", pname, param), lr, wd, beta1, beta2)
        elif name == "signsgd":
            buffer = _buffer(state, "momentum_buffer", pname, param) if hyper.has_momentum else None
            delta = signsgd_update(param, grad, buffer, lr, wd, momentum)
        elif name == "schedule_free_adamw":
            z = _buffer(state, "z", pname, param, copy=True)
            x = _buffer(state, "x", pname, param, copy=True)
            y = schedule_free_update(param, grad, z, x, _buffer(state, "exp_avg_sq", pname, param), lr, wd,
                                     _per_member(c, param), step, beta1, beta2, eps)
            updates[pname] = y - param
            param.copy_(y)  # exactly y, as the reference holds it
            continue
        elif name == "shampoo":
            delta = shampoo_update(pname, param, grad, state, lr, wd, momentum, step, eps,
                                   options.statistics_beta(name), options.refresh_every(name),
                                   options.max_precondition_dim, hyper.has_momentum)
        else:  # soap
            delta = soap_update(pname, param, grad, state, lr, wd, step, beta1, beta2, eps,
                                options.statistics_beta(name), options.refresh_every(name),
                                options.max_precondition_dim)
        param.add_(delta)
        updates[pname] = delta
    return {n: updates[n] for n in params}


def _buffer(state: dict[str, dict[str, Tensor]], group: str, pname: str, param: Tensor,
            copy: bool = False) -> Tensor:
    """state[group][pname], made at first use as zeros (or a copy of the parameter)."""
    buffers = state.setdefault(group, {})
    if pname not in buffers:
        buffers[pname] = param.detach().clone() if copy else torch.zeros_like(param)
    return buffers[pname]


def evaluation_params(name: str, params: dict[str, Tensor], state: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
    """The point an optimizer means to be evaluated at: schedule_free_adamw's average x
    (`state["x"]`, the schedulefree package's eval mode) once it has stepped, else `params`."""
    if name == "schedule_free_adamw" and "x" in state:
        return {n: state["x"].get(n, p) for n, p in params.items()}
    return params
