"""Functional optimizers over stacked parameters, with per-member hyperparameters.

Each member k has its own learning rate, weight decay and momentum ((K,) tensors);
each parameter has its own learning-rate multiplier (from the parameterization).
Updates follow torch.optim.SGD / Adam / AdamW exactly (tests check this), so K=1
reproduces PyTorch's optimizers.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["MemberHyper", "init_optimizer_state", "optimizer_step"]


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
) -> dict[str, Tensor]:
    """Update `params` in place; return the update applied to each (new - old).

    step is 1-based (Adam's bias correction). Members whose lr is 0 stay put.
    """
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
