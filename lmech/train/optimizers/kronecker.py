"""Kronecker-factored statistics of stacked tensors: which axes carry a factor, mode products.

One job: the linear algebra Shampoo and SOAP share, batched over the leading member axis K.
A member's tensor of shape (d_1, ..., d_n) has one factor per axis i with 1 < d_i <= max_dim:
L_i = G_(i) G_(i)^T (d_i, d_i), G_(i) the mode-i unfolding. Size-1 axes carry none, so the lmech
MLP's (K, 1, H) biases are vectors, as torch.nn.Linear's (H,) are.
"""

import torch
from torch import Tensor

__all__ = ["factored_axes", "identities", "accumulate", "mode_gram", "mode_product", "inverse_root", "finite"]


def factored_axes(member_shape: tuple[int, ...], max_dim: int) -> list[int]:
    """Axes (0-based, of one member's shape) that get a Kronecker factor."""
    return [i for i, d in enumerate(member_shape) if 1 < d <= max_dim]


def identities(like: Tensor, d: int) -> Tensor:
    """(K, d, d) identity matrices in like's dtype and device (K = like.shape[0])."""
    return torch.eye(d, dtype=like.dtype, device=like.device).expand(like.shape[0], d, d).clone()


def _unfold(t: Tensor, axis: int) -> Tensor:
    """(K, ..., d_axis, ...) -> (K, d_axis, product of the other axes)."""
    return t.movedim(1 + axis, 1).reshape(t.shape[0], t.shape[1 + axis], -1)


def mode_gram(t: Tensor, axis: int) -> Tensor:
    """G_(i) G_(i)^T for each member: (K, d_i, d_i). Cost d_i * numel per member."""
    unfolded = _unfold(t, axis)
    return torch.bmm(unfolded, unfolded.mT)


def mode_product(t: Tensor, matrix: Tensor, axis: int) -> Tensor:
    """t x_i M for each member: the result's mode-i unfolding is M @ t_(i). matrix (K, d_i, d_i)."""
    moved = t.movedim(1 + axis, 1)
    shape = moved.shape
    out = torch.bmm(matrix, moved.reshape(shape[0], shape[1], -1)).reshape(shape)
    return out.movedim(1, 1 + axis)


def accumulate(statistics: Tensor, gram: Tensor, beta: float) -> None:
    """In place: S <- S + gram (beta = 1, a sum) or S <- beta S + (1 - beta) gram (an average)."""
    if beta == 1.0:
        statistics.add_(gram)
    else:
        statistics.lerp_(gram, 1 - beta)


def finite(matrices: Tensor) -> Tensor:
    """Non-finite entries as 0: a diverging member's statistics must not make a decomposition
    raise for the whole ensemble (the trainer freezes that member at the next step)."""
    return torch.nan_to_num(matrices, nan=0.0, posinf=0.0, neginf=0.0)


def inverse_root(statistics: Tensor, power: float, eps: float) -> Tensor:
    """S^(-1/power) of each member's symmetric PSD (K, d, d), by eigh in float64 (eigenvalues
    clamped at eps; non-finite entries, a diverging member's, read as 0), returned in the input's
    dtype. Cost: one d x d eigendecomposition a member."""
    eigenvalues, vectors = torch.linalg.eigh(finite(statistics).to(torch.float64))
    scaled = vectors * eigenvalues.clamp(min=eps).pow(-1.0 / power).unsqueeze(-2)
    return (scaled @ vectors.mT).to(statistics.dtype)
