"""Norm of the full-batch training-loss gradient, per member."""

import torch
from torch import Tensor

from lmech.train.loop import TrainState, losses_and_grads

__all__ = ["grad_norm"]


def grad_norm(state: TrainState) -> dict[str, Tensor]:
    """grad_norm/total (K,): |dL_train/dtheta|_2 over all parameters, on the full training set.

    Algorithm: the trainer's own stacked forward and backward (members' losses are
    independent, so the gradient of their sum holds each member's gradient in its slice).
    """
    with torch.enable_grad():
        _, grads = losses_and_grads(state, state.x_train, state.y_train)
    return {"total": torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()}
