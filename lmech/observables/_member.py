"""Adapters from the trainer's stacked state to instruments that take one nn.Module."""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from lmech.train.loop import TrainState, member_module
from lmech.instruments.losses import named_loss

__all__ = ["members", "member_batch"]


def member_batch(state: TrainState, member: int, split: str = "train") -> tuple[Tensor, Tensor]:
    """(inputs, targets) of one member's training or test set."""
    x = state.x_train if split == "train" else state.x_test
    y = state.y_train if split == "train" else state.y_test
    if state.per_member_data:
        return x[member], y[member]
    return x, y


def members(state: TrainState, split: str = "train") -> Iterator[tuple[int, torch.nn.Module, Callable, tuple]]:
    """Yield (k, module, loss_fn, batch) for each member, the module holding a copy of its parameters."""
    loss_fn = named_loss(state.loss)
    for k in range(len(state.specs)):
        module = member_module(state, k)
        yield k, module, loss_fn, member_batch(state, k, split)

