"""Per-layer activation scale: the RMS of every layer's pre-activations (the muP "coordinate check").

One job: how large each layer's coordinates are, per ensemble member. It ignores
which direction they point and whether they are useful.
"""

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.models.parameterization import activate
from lmech.train.loop import TrainState

__all__ = ["activation_scale", "preactivation_rms"]

def preactivation_rms(state: TrainState, x: Float[Tensor, "N D"] | Float[Tensor, "K N D"]) -> Float[Tensor, "L K"]:
    """RMS over examples and units of each layer's pre-activation z_l = multiplier_l * h_{l-1} W_l + b_l.

    The last layer's value is the network output (times the member's output multiplier).
    Returns (L, K) float32, in the units of the layer's outputs.
    Algorithm: one forward pass that keeps every layer's z; cost 2*K*N*P FLOPs.
    """
    plan, params = state.plan, state.params
    last = len(plan.layers) - 1
    rms = []
    h = x
    with torch.no_grad():
        for index, layer in enumerate(plan.layers):
            weight = params[f"W{index}"]
            z = torch.matmul(h, weight) if h.dim() == 2 else torch.bmm(h, weight)  # (K, N, fan_out)
            z = z * layer.multiplier
            if plan.bias:
                z = z + params[f"b{index}"]
            if index == last:
                z = z * state.output_multiplier.view(-1, 1, 1)
            rms.append(z.pow(2).mean(dim=(1, 2)).sqrt())
            h = activate(z, plan.activation)
    return torch.stack(rms)


def activation_scale(state: TrainState, max_examples: int | None = None) -> dict[str, Float[Tensor, " K"]]:
    """activation_scale/<l> for each layer l = 0..L-1 (l = L-1 is the output), each (K,).

    Measured on the training inputs (the first max_examples of them if given). Under muP
    these stay Theta(1) in width after a few steps of training; under SP the hidden and
    output ones grow with width (Yang et al. 2022, Sec. 3 and Fig. 5).
    Failure modes: at step 0 both parameterizations look flat (hidden layers) -- the
    check needs a few training steps at a fixed learning rate.
    """
    x = state.x_train
    if max_examples is not None:
        x = x[..., :max_examples, :]
    values = preactivation_rms(state, x)
    return {str(index): values[index] for index in range(values.shape[0])}
