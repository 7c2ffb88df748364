"""The Task record every generator returns; it knows nothing of models or training."""

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

__all__ = ["Task", "LossName"]

LossName = Literal["half_sse", "mse", "cross_entropy"]


@dataclass(frozen=True)
class Task:
    """A supervised data set, already on tensors.

    Attributes:
        x_train: (N, D) float32 inputs.
        y_train: (N, C) float32 targets for "half_sse"/"mse"; (N,) int64 class labels for "cross_entropy".
        x_test: (M, D) float32.
        y_test: like y_train, with M rows.
        loss: the natural loss of the task.
        output_dim: C, the number of network outputs.
        extras: task-specific tensors an observable may need (e.g. the target's
            singular vectors), keyed by name.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    loss: LossName
    output_dim: int
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[-1])
