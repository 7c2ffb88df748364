"""Linear mode connectivity: the loss barrier on the segment between two parameter vectors.

One job: L((1 - a) theta0 + a theta1) on a grid of a and the barrier height. It
ignores permutation alignment of the endpoints (do that before calling).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch, functional_outputs
from lmech.instruments._hvp import flatten_params, param_layout, unflatten_params
from lmech.instruments._json import JsonResult
from lmech.instruments._state import measures_model

__all__ = ["LossBarrier", "loss_barrier"]

Endpoint = Tensor | dict[str, Tensor]


@dataclass(frozen=True)
class LossBarrier(JsonResult):
    """Loss along the linear path and its barrier.

    Attributes:
        barrier: max_a [L(a) - ((1 - a) L(0) + a L(1))] (loss units; >= 0 since
            the endpoints give 0; ~0 means linearly mode connected).
        barrier_alpha: the a attaining it.
        barrier_mean_endpoints: max_a L(a) - (L(0) + L(1)) / 2, Frankle et al.'s
            'instability' form (can be negative when endpoints differ).
        alphas: (A,) float64 path coordinates.
        losses: (A,) float64 losses along the path.
    """

    barrier: float
    barrier_alpha: float
    barrier_mean_endpoints: float
    alphas: Float[Tensor, " A"]
    losses: Float[Tensor, " A"]


def _endpoint(theta: Endpoint, model: torch.nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
    """(flat trainable params, float buffers) of an endpoint; buffers from the model for flat input."""
    layout = param_layout(model)
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    if isinstance(theta, dict):
        flat = flatten_params({k: v.detach() for k, v in theta.items()}, layout)
        buffers = {n: theta[n].detach() if n in theta else b for n, b in buffers.items()}
        return flat, buffers
    if theta.shape != (layout.size,):
        raise ValueError(f"flat endpoint has shape {tuple(theta.shape)}, expected ({layout.size},)")
    return theta.detach(), buffers


@measures_model
def loss_barrier(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 batch: Batch, theta0: Endpoint, theta1: Endpoint, *,
                 num_points: int = 11) -> LossBarrier:
    """Loss on the straight line between two parameter settings of the same architecture.

    Args:
        model: template giving the architecture (and buffers for flat endpoints);
            never modified. Evaluated in its current mode (use eval()).
        loss_fn: (outputs, targets) -> mean loss.
        batch: (inputs, targets) the loss is measured on.
        theta0, theta1: state_dicts (float buffers such as BatchNorm statistics are
            interpolated too; integer buffers come from theta0) or flat (P,)
            vectors of the trainable parameters in `named_parameters()` order.
        num_points: A >= 2 equally spaced alphas in [0, 1], endpoints included.

    Algorithm:
        A forward passes under no_grad via functional_call. Cost: A losses.

    Source:
        Frankle, Dziugaite, Roy & Carbin (2020) "Linear mode connectivity and
        the lottery ticket hypothesis", section 2 (instability); the
        linear-interpolation baseline follows Entezari et al. (2022).

    Failure modes:
        A coarse grid underestimates narrow barriers. Networks differing by a
        hidden-unit permutation show a barrier even when functionally equal.
    """
    if num_points < 2:
        raise ValueError("num_points must be >= 2")
    layout = param_layout(model)
    p0, b0 = _endpoint(theta0, model)
    p1, b1 = _endpoint(theta1, model)
    alphas = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in layout.names}
    losses = []
    with torch.no_grad():
        for a in alphas.tolist():
            params = unflatten_params((1 - a) * p0 + a * p1, layout)
            buffers = {n: ((1 - a) * b0[n] + a * b1[n]) if torch.is_floating_point(b0[n]) else b0[n].clone()
                       for n in b0}
            out = functional_outputs(model, {**params, **frozen, **buffers}, batch[0])
            losses.append(float(loss_fn(out, batch[1])))
    loss_t = torch.tensor(losses, dtype=torch.float64)
    gap = loss_t - ((1 - alphas) * loss_t[0] + alphas * loss_t[-1])
    i = int(torch.argmax(gap))
    return LossBarrier(float(gap[i]), float(alphas[i]), float(loss_t.max() - 0.5 * (loss_t[0] + loss_t[-1])),
                       alphas, loss_t)
