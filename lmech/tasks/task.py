"""The Task record every generator returns; it knows nothing of models or training."""

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

__all__ = ["Task", "LossName", "IGNORE_INDEX"]

LossName = Literal["half_sse", "mse", "cross_entropy"]

# Targets equal to this are left out of "cross_entropy" (torch's default ignore_index).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Task:
    """A supervised data set, already on tensors.

    Attributes:
        x_train: (N, D) float32 inputs; (N, T) int64 tokens in [0, V) for a language task;
            (N, T, D) float32 for a real-valued sequence task.
        y_train: (N, C) float32 targets for "half_sse"/"mse"; (N,) int64 class labels for
            "cross_entropy"; (N, T) int64 next tokens for a language task, where positions
            with target IGNORE_INDEX (-100) are left out of the loss.
        x_test: like x_train, with M rows.
        y_test: like y_train, with M rows.
        loss: the natural loss of the task.
        output_dim: C, the number of network outputs per example (per position for
            sequences); V for a language task.
        extras: task-specific tensors an observable may need (e.g. the target's
            singular vectors), keyed by name.
        vocab_size: V for token inputs, None for real-valued inputs.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    loss: LossName
    output_dim: int
    extras: dict[str, Tensor] = field(default_factory=dict)
    vocab_size: int | None = None

    @property
    def input_dim(self) -> int:
        """The size of the last input axis: D for (N, D) inputs, T for (N, T) tokens."""
        return int(self.x_train.shape[-1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: (D,), (T,) for tokens, (T, D) for real sequences."""
        return tuple(self.x_train.shape[1:])
