"""Norm of the full-batch training-loss gradient, per member."""

import torch
from torch import Tensor

from lmech.models.mlp import forward
from lmech.train.loop import TrainState
from lmech.train.losses import per_member_loss

__all__ = ["grad_norm"]


def grad_norm(state: TrainState) -> dict[str, Tensor]:
    """grad_norm (K,): |dL_train/dtheta|_2 over all parameters, on the full training set.

    Algorithm: one stacked forward and backward (members' losses are independent,
    so the gradient of their sum holds each member's gradient in its own slice).
    """
    params = {n: p.detach().requires_grad_(True) for n, p in state.params.items()}
    with torch.enable_grad():
        losses = per_member_loss(forward(state.plan, params, state.x_train, state.output_multiplier),
                                 state.y_train, state.loss)
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
    return {"grad_norm": torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()}
