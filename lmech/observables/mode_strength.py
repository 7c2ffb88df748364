"""Strength of each singular mode of a target map in a deep linear network's end-to-end map."""

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.train.loop import TrainState

__all__ = ["end_to_end_map", "mode_strength"]


def end_to_end_map(state: TrainState) -> Tensor:
    """(K, D, C) product of all layers' multiplier * W (times the output multiplier): f(x) = x @ map.

    Only defined for networks without nonlinearity and biases.
    """
    if state.plan.activation != "linear" or state.plan.bias:
        raise InputError("mode_strength needs a deep linear network (activation linear, no bias)")
    product = None
    for index, layer in enumerate(state.plan.layers):
        weight = state.params[f"W{index}"].detach() * layer.multiplier
        product = weight if product is None else torch.bmm(product, weight)
    return product * state.output_multiplier.view(-1, 1, 1)


def mode_strength(state: TrainState) -> dict[str, Tensor]:
    """mode_strength/<r> (K,): u_r^T M_net v_r, where the task's target map is U diag(s) V^T.

    Uses the task extras "U" (C, R) and "V" (D, R) (task deep_linear). In units of the
    target's singular values: a learned mode reaches s_r (Saxe et al. 2014, Sec. 1.1).
    Cost: one product of the layer matrices.
    """
    extras = state.tasks[0].extras
    if "U" not in extras or "V" not in extras:
        raise InputError("mode_strength needs a task with target singular vectors (deep_linear)")
    net = end_to_end_map(state)  # (K, D, C)
    u, v = extras["U"], extras["V"]  # (C, R), (D, R)
    strengths = torch.einsum("dr,kdc,cr->kr", v, net, u)
    return {str(r): strengths[:, r] for r in range(strengths.shape[1])}
