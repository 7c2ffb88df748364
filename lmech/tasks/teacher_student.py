"""Teacher-student regression: targets are the outputs of a random one-hidden-layer tanh MLP."""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["TeacherStudentSpec", "make_teacher_student"]


class TeacherStudentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["teacher_student"] = "teacher_student"
    n_train: int = Field(256, ge=1, le=10_000_000)
    n_test: int = Field(512, ge=1, le=10_000_000)
    input_dim: int = Field(16, ge=1, le=65_536)
    output_dim: int = Field(1, ge=1, le=65_536)
    teacher_width: int = Field(32, ge=1, le=65_536)
    noise: float = Field(0.0, ge=0)


def make_teacher_student(spec: TeacherStudentSpec, seed: int) -> Task:
    """x ~ N(0, I_D); y = a^T tanh(W x / sqrt(D)) / sqrt(H) + noise.

    Shapes: x (N, D), y (N, C) float32; loss "half_sse". extras: teacher weights
    "teacher_W" (H, D), "teacher_a" (H, C).
    """
    g = generator(seed, "teacher_student")
    w = torch.randn(spec.teacher_width, spec.input_dim, generator=g)
    a = torch.randn(spec.teacher_width, spec.output_dim, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, spec.input_dim, generator=g)
        y = torch.tanh(x @ w.T / spec.input_dim**0.5) @ a / spec.teacher_width**0.5
        return x, y + spec.noise * torch.randn(n, spec.output_dim, generator=g)

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "half_sse", spec.output_dim,
                {"teacher_W": w, "teacher_a": a})
