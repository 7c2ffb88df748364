"""Empirical neural tangent kernel Gram matrices, and kernel alignment/distance.

One job: K(x, x') = J(x) J(x')^T at the current parameters, where J is the
Jacobian of the outputs w.r.t. the trainable parameters, plus two scalar
comparisons of kernels. It ignores the infinite-width NTK (see `theory/`).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor
from torch.func import functional_call, jacrev, vmap

from lmech.observables._hvp import param_layout
from lmech.observables._json import JsonResult

__all__ = ["NTKGram", "ntk_gram", "kernel_alignment", "kernel_distance"]

Mode = Literal["trace", "diagonal", "full"]


@dataclass(frozen=True)
class NTKGram(JsonResult):
    """Empirical NTK Gram matrix.

    Attributes:
        gram: float tensor in the model's dtype; shape by mode:
            "trace" (N, N2): sum_c <dF_c(x_n)/dθ, dF_c(x_m)/dθ>;
            "diagonal" (N, N2, C): per logit c, <dF_c(x_n)/dθ, dF_c(x_m)/dθ>;
            "full" (N, N2, C, C): <dF_c(x_n)/dθ, dF_d(x_m)/dθ>.
            Units: output units^2 per parameter unit^2.
        mode: which of the three.
    """

    gram: Tensor
    mode: str


def _jacobian_chunks(model: torch.nn.Module, inputs: Tensor, chunk_size: int) -> Iterator[Tensor]:
    """Yield flat per-sample Jacobians (n, C, P) for consecutive chunks of inputs."""
    layout = param_layout(model)
    named = dict(model.named_parameters())
    params = {n: named[n].detach() for n in layout.names}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}

    def f(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, {**p, **frozen, **buffers}, (x[None],))[0].reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))
    for start in range(0, inputs.shape[0], chunk_size):
        with torch.no_grad():  # jacrev builds its own graph; nothing reaches the caller's tensors
            j = jac(params, inputs[start:start + chunk_size])
        n, c = next(iter(j.values())).shape[:2]
        yield torch.cat([j[name].reshape(n, c, -1) for name in layout.names], dim=2)


def _contract(j1: Tensor, j2: Tensor, mode: Mode) -> Tensor:
    if mode == "trace":
        return torch.einsum("ncp,mcp->nm", j1, j2)
    if mode == "diagonal":
        return torch.einsum("ncp,mcp->nmc", j1, j2)
    return torch.einsum("ncp,mdp->nmcd", j1, j2)


def ntk_gram(model: torch.nn.Module, inputs1: Float[Tensor, "N ..."],
             inputs2: Float[Tensor, "N2 ..."] | None = None, *, mode: Mode = "trace",
             chunk_size: int = 64, cache_floats: int = 1 << 26) -> NTKGram:
    """Empirical NTK between inputs1 and inputs2 (inputs1 with itself when None).

    Args:
        model: maps a batch (n, ...) to outputs (n, C) (any trailing output shape
            is flattened to C). Not modified. Must treat samples independently
            (BatchNorm in train mode does not: call model.eval()).
        inputs1: (N, ...) inputs.
        inputs2: (N2, ...) inputs, or None for the symmetric N x N Gram.
        mode: "trace", "diagonal" or "full" (see NTKGram).
        chunk_size: samples per vmapped Jacobian.
        cache_floats: when the second set's Jacobians (N2 * C * P floats) fit, they are
            computed once and kept (peak memory N2 * C * P floats); otherwise they are
            recomputed for every row chunk (peak ~ 2 * chunk_size * C * P floats).

    Algorithm:
        vmap(jacrev) of the single-sample functional model gives per-sample
        Jacobians (chunk, C, P); Gram blocks are einsum contractions. Cost
        ~ (N + N2) * C backward passes and N * N2 * C * P multiply-adds (full mode:
        C times more). Jacobians are computed once when they fit in cache_floats
        (the symmetric case then needs N * C backward passes), else recomputed per row chunk.

    Source:
        Jacot, Gabriel & Hongler (2018) "Neural tangent kernel"; empirical NTK
        as in Novak et al. (2022) "Fast finite width neural tangent kernel"
        (the Jacobian-contraction method), and neural-tangents' empirical_ntk_fn.

    Failure modes:
        Memory: chunk_size * C * P floats per Jacobian block; lower chunk_size
        for big models. Non-differentiable points (ReLU kinks) use autograd's
        subgradient convention.
    """
    if mode not in ("trace", "diagonal", "full"):
        raise ValueError(f"mode must be 'trace', 'diagonal' or 'full', got {mode!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    symmetric = inputs2 is None
    second = inputs1 if symmetric else inputs2
    outputs = int(model(inputs1[:1]).reshape(-1).numel())
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cache_second = second.shape[0] * outputs * size <= cache_floats
    second_chunks = None
    if cache_second:  # each Jacobian computed once; symmetric: the second set is the first
        second_chunks = list(_jacobian_chunks(model, second, chunk_size))
    rows = []
    for i, j1 in enumerate(second_chunks if symmetric and cache_second
                           else _jacobian_chunks(model, inputs1, chunk_size)):
        columns = second_chunks if cache_second else _jacobian_chunks(model, second, chunk_size)
        rows.append(torch.cat([_contract(j1, j2, mode) for j2 in columns], dim=1))
    return NTKGram(torch.cat(rows, dim=0), mode)


def _target_kernel(y: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    if y.ndim == 1 and not torch.is_floating_point(y):
        y = torch.nn.functional.one_hot(y, int(y.max()) + 1)
    y = y.reshape(n, -1).to(dtype)
    return y @ y.T


def _center(k: Tensor) -> Tensor:
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()


def kernel_alignment(k: Float[Tensor, "N N"], y: Tensor, centered: bool = True) -> float:
    """Alignment <K, Y Y^T>_F / (|K|_F |Y Y^T|_F) between a Gram matrix and the targets.

    Args:
        k: (N, N) kernel (e.g. `ntk_gram(...).gram` in trace mode).
        y: (N,) integer labels (one-hot encoded inside) or (N, C) float targets.
        centered: center both kernels with H = I - 11^T/N first (Cortes, Mohri &
            Rostamizadeh 2012, "Algorithms for learning kernels based on centered
            alignment", Def. 1); False gives Cristianini et al. (2002)'s alignment.

    Returns:
        A float in [-1, 1] (in [0, 1] for PSD kernels); 1 for K proportional to YY^T.

    Failure modes:
        Centered alignment is undefined (NaN) when a centered kernel is 0, e.g.
        a single class.
    """
    dtype = torch.float64
    kk = k.to(dtype)
    yy = _target_kernel(y, k.shape[0], dtype)
    if centered:
        kk, yy = _center(kk), _center(yy)
    return float((kk * yy).sum() / (torch.linalg.norm(kk) * torch.linalg.norm(yy)))


def kernel_distance(k1: Float[Tensor, "N N"], k2: Float[Tensor, "N N"]) -> float:
    """Kernel distance 1 - <K1, K2>_F / (|K1|_F |K2|_F) (uncentered).

    Source:
        Fort et al. (2020) "Deep learning versus kernel learning: an empirical
        study of loss landscape geometry and the time evolution of the NTK", eq. (4).

    Failure modes:
        Scale-invariant by design: a kernel that only grows in norm has distance 0.
    """
    a, b = k1.to(torch.float64), k2.to(torch.float64)
    return float(1.0 - (a * b).sum() / (torch.linalg.norm(a) * torch.linalg.norm(b)))
