"""Binary teacher classification: labels are the sign of a random one-hidden-layer tanh teacher.

One job: a two-class task with as many generated examples as asked (PAC-Bayes bounds need
n >= 10,000), and a switch that replaces every label by a fair coin flip independent of x (the
random-label control of Zhang et al. 2017). It ignores label noise between the two extremes.
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["BinaryTeacherSpec", "make_binary_teacher"]


class BinaryTeacherSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["binary_teacher"] = "binary_teacher"
    n_train: int = Field(10_000, ge=1, le=10_000_000)
    n_test: int = Field(5_000, ge=1, le=10_000_000)
    input_dim: int = Field(20, ge=1, le=65_536)
    teacher_width: int = Field(16, ge=1, le=65_536)
    random_labels: bool = Field(False, description="replace every label (train and test) by a fair coin flip")


def make_binary_teacher(spec: BinaryTeacherSpec, seed: int) -> Task:
    """x ~ N(0, I_D); y = 1[a^T tanh(W x / sqrt(D)) > 0], or y ~ Bernoulli(1/2) with random_labels.

    Shapes: x (N, D) float32; y (N,) int64 in {0, 1}; loss "cross_entropy", output_dim 2.
    The teacher (W (H, D), a (H,), standard normal) is in extras as "teacher_W", "teacher_a".
    With random_labels the inputs are the same draws as without (the coins come from their own
    generator), so the two data sets differ only in their labels.
    """
    g = generator(seed, "binary_teacher")
    coins = generator(seed, "binary_teacher/random_labels")
    w = torch.randn(spec.teacher_width, spec.input_dim, generator=g)
    a = torch.randn(spec.teacher_width, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, spec.input_dim, generator=g)
        y = (torch.tanh(x @ w.T / spec.input_dim**0.5) @ a > 0).long()
        if spec.random_labels:
            y = torch.randint(0, 2, (n,), generator=coins)
        return x, y

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", 2, {"teacher_W": w, "teacher_a": a})
