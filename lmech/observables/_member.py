"""Adapters from the trainer's stacked state to instruments that take one nn.Module."""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from lmech.train.loop import TrainState, member_module
from lmech.train.losses import loss_function

__all__ = ["members", "member_batch", "per_member_scalars"]


def member_batch(state: TrainState, member: int, split: str = "train") -> tuple[Tensor, Tensor]:
    """(inputs, targets) of one member's training or test set."""
    x = state.x_train if split == "train" else state.x_test
    y = state.y_train if split == "train" else state.y_test
    if state.per_member_data:
        return x[member], y[member]
    return x, y


def members(state: TrainState, split: str = "train") -> Iterator[tuple[int, torch.nn.Module, Callable, tuple]]:
    """Yield (k, module, loss_fn, batch) for each member, the module holding a copy of its parameters."""
    loss_fn = loss_function(state.loss)
    for k in range(len(state.specs)):
        module = member_module(state, k)
        yield k, module, loss_fn, member_batch(state, k, split)


def per_member_scalars(state: TrainState, measure: Callable[..., dict[str, float]], split: str = "train") -> dict[str, Tensor]:
    """Loop an instrument over members; stack each scalar it returns into a (K,) tensor.

    Instruments that cannot be vectorized over K pay K times one model's cost here.
    """
    columns: dict[str, list[float]] = {}
    for _, module, loss_fn, batch in members(state, split):
        for name, value in measure(module, loss_fn, batch).items():
            columns.setdefault(name, []).append(float(value))
    return {name: torch.tensor(values) for name, values in columns.items()}
