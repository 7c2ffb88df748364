"""Schedule-free AdamW for all K members at once: the gradient point y, the iterate z, the average x.

One job: one step of the three sequences for one stacked parameter, and the per-member
averaging weight. It ignores where the trainer evaluates (its parameters hold y) and
learning-rate multipliers (folded into `lr`).

What the trainer's observables see: `TrainState.params` (and `MemberResult.final_params`)
hold y, the point where gradients are taken, as the reference implementation's parameters do
in train mode. The average x, which the method evaluates at (its eval mode), is
`optimizer_state["x"]`; `lmech.train.optim.evaluation_params` returns it.
"""

import torch
from torch import Tensor

__all__ = ["averaging_weight", "schedule_free_update"]


def averaging_weight(group: dict[str, Tensor], lr: Tensor) -> Tensor:
    """c_t = w_t / sum_{i<=t} w_i with w_t = lr_max^2 (lr_max: the largest lr so far), per member.

    Args:
        group: {"lr_max": (K,), "weight_sum": (K,)} float64, updated in place (zeros at step 0).
        lr: (K,) this step's learning rate (schedule included, lr multipliers excluded: c_t is
            invariant to a constant multiplier). A member whose weights sum to 0 (lr 0) gets c 0.

    Source: Defazio et al. 2024, "The road less scheduled", warmup weighting (r = 0,
    weight_lr_power = 2, the schedulefree package's defaults).
    """
    lr_max = torch.maximum(group["lr_max"], lr.to(torch.float64))
    group["lr_max"].copy_(lr_max)
    weight = lr_max**2
    group["weight_sum"].add_(weight)
    total = group["weight_sum"]
    return torch.where(total > 0, weight / torch.where(total > 0, total, 1.0), 0.0)


def schedule_free_update(param: Tensor, grad: Tensor, z: Tensor, x: Tensor, exp_avg_sq: Tensor, lr: Tensor,
                         weight_decay: Tensor, c: Tensor, step: int, beta1: float, beta2: float,
                         eps: float) -> Tensor:
    """The new y (the caller stores it in param); z, x and exp_avg_sq are updated in place.

    Args: param (= y), grad, z, x, exp_avg_sq (K, ...); lr, weight_decay, c per member ((K, 1, ...));
        step 1-based.

    Algorithm (the schedulefree package's AdamWScheduleFreeReference, decay at y):
    z <- z - lr wd y; v <- beta2 v + (1 - beta2) g^2; z <- z - lr g / (sqrt(v / (1 - beta2^t)) + eps);
    x <- (1 - c) x + c z; y <- beta1 x + (1 - beta1) z. No first-moment buffer: beta1 interpolates.
    Memory: three extra copies of the parameters (z, x, v).

    Source: Defazio et al. 2024, Algorithm 1 with the Adam preconditioner.
    Failure mode: a decaying learning-rate schedule on top defeats the purpose; constant or warmup.
    """
    if bool(weight_decay.any()):
        z.sub_(lr * weight_decay * param)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(eps)
    z.sub_(lr * grad / denom)
    c = c.to(param.dtype)
    x.mul_(1 - c).add_(c * z)
    return x * beta1 + z * (1 - beta1)
