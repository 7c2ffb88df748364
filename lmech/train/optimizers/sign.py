"""Sign-based updates: Lion and signSGD with momentum (Signum), for all K members at once.

One job: the update (new - old) of one stacked parameter. It ignores learning-rate schedules
and multipliers (the caller folds them into `lr`).
"""

import torch
from torch import Tensor

__all__ = ["lion_update", "signsgd_update"]


def lion_update(param: Tensor, grad: Tensor, exp_avg: Tensor, lr: Tensor, weight_decay: Tensor,
                beta1: float, beta2: float) -> Tensor:
    """Lion's update; `exp_avg` (the momentum m) is updated in place.

    Args: param, grad, exp_avg (K, ...); lr, weight_decay broadcastable per member ((K, 1, ...)).

    Algorithm: u = sign(beta1 m + (1 - beta1) g); delta = -lr (u + wd W) (decoupled decay);
    then m <- beta2 m + (1 - beta2) g. Every entry moves by exactly lr (plus the decay), so
    lr is about 3-10x smaller than AdamW's for the same run. Elementwise, O(P).

    Source: Chen et al. 2023, "Symbolic discovery of optimization algorithms", Algorithm 2
    (the paper's defaults are beta1 = 0.9, beta2 = 0.99); lion-pytorch's update_fn step for step.
    """
    update = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1).sign_()
    exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
    delta = update * -lr
    if bool(weight_decay.any()):
        delta = delta - lr * weight_decay * param
    return delta


def signsgd_update(param: Tensor, grad: Tensor, buffer: Tensor | None, lr: Tensor, weight_decay: Tensor,
                   momentum: Tensor) -> Tensor:
    """signSGD's update, with momentum (Signum) when `buffer` is given (updated in place).

    Args: param, grad, buffer (K, ...); lr, weight_decay, momentum per member ((K, 1, ...)).

    Algorithm: m <- mu m + (1 - mu) g (m = g for mu = 0); delta = -lr (sign(m) + wd W). The
    momentum is an average, not torch SGD's sum, but sign() cannot tell the two apart; Signum
    is Lion with beta1 = beta2 = mu, and the tests check it against Lion so.

    Source: Bernstein et al. 2018, "signSGD: compressed optimisation for non-convex problems",
    Algorithms 1 (signSGD) and 3 (Signum).
    """
    if buffer is not None:
        momentum = momentum.to(param.dtype)
        buffer.mul_(momentum).add_(grad * (1 - momentum))
        grad = buffer
    delta = torch.sign(grad) * -lr
    if bool(weight_decay.any()):
        delta = delta - lr * weight_decay * param
    return delta
