"""Classification accuracy: the share of examples whose arg-max output is the true class."""

import torch
from torch import Tensor

from lmech.train.loop import TrainState

__all__ = ["accuracy", "accuracy_of"]


def accuracy_of(outputs: Tensor, targets: Tensor) -> Tensor:
    """outputs (K, N, C) or (K, N, T, V); targets labels (N,)/(N, T), shared or per member (K, ...),
    or one-hot/real (.., N, C): -> (K,) in [0, 1], the share of scored positions predicted right.

    Real targets use their arg-max as the class; label -100 marks a position not scored (the
    language tasks' convention). Single-output regression has no accuracy: NaN.
    """
    if outputs.shape[-1] == 1:
        return torch.full(outputs.shape[:1], float("nan"))
    labels = targets if not targets.is_floating_point() else targets.argmax(-1)
    hits = (outputs.argmax(-1) == labels).float()
    scored = (labels != -100).float().expand_as(hits)
    return (hits * scored).flatten(1).sum(-1) / scored.flatten(1).sum(-1)


def accuracy(state: TrainState) -> dict[str, Tensor]:
    """accuracy/train and accuracy/test, each (K,). Cost: 2 forward passes."""
    return {
        "train": accuracy_of(state.outputs(state.x_train), state.y_train),
        "test": accuracy_of(state.outputs(state.x_test), state.y_test),
    }
