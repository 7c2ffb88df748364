"""Training and test loss of every member (the loss the run is trained on)."""

import torch
from torch import Tensor

from lmech.train.loop import TrainState
from lmech.train.losses import per_member_loss

__all__ = ["loss"]


def loss(state: TrainState, train: bool = True) -> dict[str, Tensor]:
    """loss/train and loss/test, each (K,), in the task's loss units (half_sse: 0.5*squared error summed over outputs).

    Option train=False skips loss/train: for one-pass (online) runs whose
    training set is the whole stream, where a full pass over it would cost far
    more than the training itself and the test loss is the quantity of interest.

    Algorithm: one full forward pass per split; cost 2 forward passes (1 without train).
    """
    with torch.no_grad():
        out = {"test": per_member_loss(state.outputs(state.x_test), state.y_test, state.loss)}
        if train:
            out["train"] = per_member_loss(state.outputs(state.x_train), state.y_train, state.loss)
        return out
