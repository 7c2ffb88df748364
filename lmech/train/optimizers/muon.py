"""Muon's update of one hidden weight matrix, for all K members at once.

One job: momentum, Newton-Schulz orthogonalisation, the shape-dependent scale and decoupled
weight decay of a matrix that `hidden_matrices` named. It ignores every other parameter (the
caller gives those AdamW) and which parameters are matrices.
"""

import math
from typing import Literal

from torch import Tensor

from lmech.train.optimizers.newton_schulz import newton_schulz

__all__ = ["Layout", "muon_update", "muon_scale"]

# How a member's matrix is stored: "out_in" is (fan_out, fan_in, ...) as torch.nn.Linear and
# conv weights (trailing kernel axes are flattened into fan_in); "in_out" is (fan_in, fan_out),
# the lmech MLP's W (z = h @ W).
Layout = Literal["out_in", "in_out"]


def muon_scale(fan_out: int, fan_in: int, rule: str) -> float:
    """The update's multiplier: torch.optim.Muon's `_adjust_lr` for a (fan_out, fan_in) weight."""
    if rule == "original":
        return math.sqrt(max(1.0, fan_out / fan_in))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(fan_out, fan_in))
    raise ValueError(f"unknown muon_lr_scale '{rule}'")


def muon_update(param: Tensor, grad: Tensor, buffer: Tensor, lr: Tensor, weight_decay: Tensor,
                momentum: Tensor, layout: Layout, nesterov: bool, ns_steps: int, scale_rule: str) -> Tensor:
    """The update (new - old) of one stacked matrix; `buffer` is updated in place.

    Args:
        param, grad, buffer: (K, fan_out, fan_in, ...) for "out_in", (K, fan_in, fan_out) for
            "in_out"; the parameter's dtype.
        lr, weight_decay, momentum: per-member values broadcastable to param ((K, 1, ...)).

    Algorithm (torch.optim.Muon, step for step): B <- mu B + (1 - mu) g; the update direction is
    (1 - mu) g + mu B (Nesterov) or B; O = NS(direction as (fan_out, fan_in)) (`newton_schulz`);
    delta = -lr wd W - lr s O with s = `muon_scale`. Weight decay uses the unscaled lr, as torch.
    Cost: one batched Newton-Schulz, about 5 (2 A^2 B + A^3) multiply-adds a member, A <= B the sides.

    Source: Jordan et al. 2024 (Muon); Liu et al. 2025 ("Muon is scalable for LLM training") for
    the match_rms_adamw scale.
    """
    momentum = momentum.to(param.dtype)
    buffer.lerp_(grad, 1 - momentum)
    direction = grad.lerp(buffer, momentum) if nesterov else buffer
    k = direction.shape[0]
    if layout == "in_out":
        matrix = direction.mT
    else:
        matrix = direction.reshape(k, direction.shape[1], -1)
    fan_out, fan_in = matrix.shape[1], matrix.shape[2]
    orthogonal = newton_schulz(matrix, ns_steps)
    orthogonal = orthogonal.mT if layout == "in_out" else orthogonal.reshape(param.shape)
    delta = orthogonal * (-lr * muon_scale(fan_out, fan_in, scale_rule))
    if bool(weight_decay.any()):
        delta = delta - lr * weight_decay * param
    return delta
