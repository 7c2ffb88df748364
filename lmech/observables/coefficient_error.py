"""Excess risk of a linear model on isotropic Gaussian regression: |beta_hat - beta|^2."""

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.observables.mode_strength import end_to_end_map
from lmech.train.loop import TrainState

__all__ = ["coefficient_error"]


def coefficient_error(state: TrainState) -> dict[str, Tensor]:
    """coefficient_error/value (K,): |beta_hat - beta|_2^2, in units of y^2.

    For x ~ N(0, I) this equals the excess test risk E(x^T(beta_hat - beta))^2 exactly,
    without the sampling noise of a finite test set (Hastie et al. 2019, eq. 2).
    Needs a linear network (no bias) and a task with extras["beta"] (gaussian_regression);
    with per-member data each member is compared with its own beta. Cost: O(K P).
    """
    if not all("beta" in task.extras for task in state.tasks):
        raise InputError("coefficient_error needs the gaussian_regression task (true beta)")
    beta_hat = end_to_end_map(state)[:, :, 0]  # (K, D)
    betas = [task.extras["beta"] for task in state.tasks]
    beta = betas[0].unsqueeze(0) if len(betas) == 1 else torch.stack(betas)
    return {"value": (beta_hat - beta).pow(2).sum(-1)}
