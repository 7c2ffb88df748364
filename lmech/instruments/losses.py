"""Named losses of one model, meaning what torch means by the same name.

One job: map a loss name to a function (outputs, targets) -> scalar. It ignores
ensembles (the trainer's stacked form is `lmech.train.losses.per_member_loss`,
which agrees with these to float rounding; tests check it).

- `mse`: `torch.nn.functional.mse_loss`, the mean over every element.
- `half_sse`: 0.5 * sum over outputs of the squared error, mean over examples
  (the convention of the stability and kernel literature, where the Hessian of
  a linear model is the input covariance); equals mse * C / 2 for C outputs.
- `cross_entropy`: `torch.nn.functional.cross_entropy` over the last axis, mean
  over every position whose target is not `ignore_index` (-100). Outputs
  (N, C) with targets (N,), or sequence outputs (N, T, V) with targets (N, T).
"""

from collections.abc import Callable

import torch
from torch import Tensor

from lmech.errors import InputError

__all__ = ["LOSS_NAMES", "named_loss", "IGNORE_INDEX"]

LOSS_NAMES = ("mse", "half_sse", "cross_entropy")
IGNORE_INDEX = -100


def _check_same_shape(outputs: Tensor, targets: Tensor, name: str) -> None:
    if outputs.shape != targets.shape:
        raise InputError(f"{name} needs outputs and targets of one shape; "
                         f"outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)}")


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    _check_same_shape(outputs, targets, "mse")
    return torch.nn.functional.mse_loss(outputs, targets)


def _half_sse(outputs: Tensor, targets: Tensor) -> Tensor:
    _check_same_shape(outputs, targets, "half_sse")
    return 0.5 * (outputs - targets).pow(2).sum(-1).mean()


def _cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    if targets.is_floating_point():
        raise InputError("cross_entropy needs integer class targets; these are floats")
    if outputs.shape[:-1] != targets.shape:
        raise InputError(f"cross_entropy needs outputs (..., classes) over targets (...); "
                         f"outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)}")
    return torch.nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1),
                                             ignore_index=IGNORE_INDEX)


_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": _mse, "half_sse": _half_sse, "cross_entropy": _cross_entropy,
}


def named_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called `name` (one of LOSS_NAMES) as (outputs, targets) -> scalar.

    Raises:
        InputError: an unknown name (the message lists the known ones).
    """
    if name not in _LOSSES:
        raise InputError(f"unknown loss '{name}'; known: {', '.join(LOSS_NAMES)}")
    return _LOSSES[name]
