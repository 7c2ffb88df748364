"""Orthogonalisation by the quintic Newton-Schulz iteration, batched over the K members.

One job: map each member's matrix G = U S V^T to about U V^T without an SVD. It ignores which
parameters are matrices (`hidden_matrices`) and how the result is scaled (`muon`).
"""

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["newton_schulz", "NS_COEFFICIENTS", "NS_EPS"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_EPS = 1e-7  # torch.optim.Muon's eps: the Frobenius norm is clamped at it


def newton_schulz(g: Float[Tensor, "K A B"], steps: int = 5,
                  coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = NS_EPS) -> Float[Tensor, "K A B"]:
    """About the orthogonal factor U V^T of each member's G = U S V^T, same shape and dtype.

    Algorithm: X <- G / max(||G||_F, eps) (each member's own norm, so every singular value is
    at most 1), transposed to be wide (A <= B); then `steps` times X <- a X + (b A + c A A) X with
    A = X X^T, as batched matmuls (bmm): each step costs 2 A^2 B + A^3 multiply-adds a member.
    The odd polynomial p(s) = a s + b s^3 + c s^5 is applied to every singular value.

    Source: Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"
    (coefficients 3.4445, -4.7750, 2.0315, five steps), as torch.optim.Muon implements it,
    except that this runs in the input's dtype where torch casts to bfloat16.

    Failure modes: the coefficients trade convergence for slope at zero, so the output's
    singular values are not 1 but spread over about [0.7, 1.2] (Gaussian inputs); singular
    values below about 1e-3 of the largest stay small after five steps; G = 0 gives 0.
    """
    a, b, c = coefficients
    x = g
    wide = g.shape[-2] <= g.shape[-1]
    if not wide:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = torch.bmm(x, x.mT)  # (K, A, A)
        polynomial = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, polynomial, x, beta=a)
    return x if wide else x.mT
