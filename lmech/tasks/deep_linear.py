"""A deep-linear target: whitened inputs and a target map with chosen singular values.

The microcosm of Saxe, McClelland & Ganguli (2014): with Sigma_xx = I, the
input-output correlation Sigma_yx = U diag(s) V^T is exactly the target map.
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["DeepLinearSpec", "make_deep_linear"]


class DeepLinearSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["deep_linear"] = "deep_linear"
    input_dim: int = Field(8, ge=1, le=65_536)
    output_dim: int = Field(8, ge=1, le=65_536)
    singular_values: tuple[float, ...] = Field((3.0, 2.0, 1.0, 0.5), strict=False, max_length=65_536)  # lists from YAML
    n_test: int = Field(256, ge=1, le=10_000_000)


def _random_orthonormal(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r)))[:, :k]


def make_deep_linear(spec: DeepLinearSpec, seed: int) -> Task:
    """Whitened training inputs (N = D, X = sqrt(N) I rotated) and targets y = M x.

    Shapes: x_train (D, D) with x^T x / N = I exactly; y (N, C); M = U diag(s) V^T,
    (C, D). extras: "U" (C, R), "V" (D, R), "singular_values" (R,), "target_map" (C, D).
    """
    k = len(spec.singular_values)
    if k > min(spec.input_dim, spec.output_dim):
        raise ValueError(
            f"deep_linear: {k} singular values need input_dim and output_dim >= {k}"
        )
    g = generator(seed, "deep_linear")
    u = _random_orthonormal(spec.output_dim, k, g)
    v = _random_orthonormal(spec.input_dim, k, g)
    s = torch.tensor(spec.singular_values, dtype=torch.float64)
    target = u @ torch.diag(s) @ v.T
    n = spec.input_dim
    rotation = _random_orthonormal(n, n, g)
    x_train = rotation * n**0.5  # rows are examples; x^T x / N = I
    x_test = torch.randn(spec.n_test, n, generator=g, dtype=torch.float64)
    extras = {"U": u.float(), "V": v.float(), "singular_values": s.float(), "target_map": target.float()}
    return Task(
        x_train.float(), (x_train @ target.T).float(), x_test.float(), (x_test @ target.T).float(),
        "half_sse", spec.output_dim, extras,
    )
