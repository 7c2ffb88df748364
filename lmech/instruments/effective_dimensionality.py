"""Effective dimensionality N_eff(z) = sum_i lambda_i / (lambda_i + z) of the Hessian.

One job: how many Hessian directions are 'determined by the data' at scale z. It
ignores eigenvalues beyond the top k computed (their contribution is dropped).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch
from lmech.instruments._json import JsonResult
from lmech.instruments.sharpness import sharpness
from lmech.instruments._state import measures_model

__all__ = ["EffectiveDimensionality", "effective_dimensionality", "effective_dimensionality_from_eigenvalues"]


@dataclass(frozen=True)
class EffectiveDimensionality(JsonResult):
    """N_eff(z) from a set of (top) Hessian eigenvalues.

    Attributes:
        n_eff: sum over positive eigenvalues of lambda / (lambda + z) (dimensionless).
        z: the regularization constant (eigenvalue units).
        eigenvalues: (k,) float64 eigenvalues used, descending.
        n_negative: eigenvalues <= 0, which contribute 0 (clipped).
        converged: whether the eigenvalue solver converged (True for given eigenvalues).
    """

    n_eff: float
    z: float
    eigenvalues: Float[Tensor, " k"]
    n_negative: int
    converged: bool


def effective_dimensionality_from_eigenvalues(eigenvalues: Float[Tensor, " k"], z: float, *,
                                              converged: bool = True) -> EffectiveDimensionality:
    """N_eff(z) = sum_i max(lambda_i, 0) / (max(lambda_i, 0) + z) for given eigenvalues.

    Args:
        eigenvalues: (k,) Hessian eigenvalues (any order, any float dtype).
        z: > 0, in eigenvalue units (Maddox et al. use the prior precision / weight decay).
        converged: passed through to the result.

    Source:
        Maddox, Benton & Wilson (2020) "Rethinking parameter counting in deep
        models: effective dimensionality revisited", eq. (2); MacKay (1992).

    Failure modes:
        Negative eigenvalues (non-convex points) are clipped to 0 and counted in
        n_negative; with only the top k eigenvalues N_eff is a lower bound.
    """
    if not z > 0:
        raise ValueError(f"z must be > 0, got {z}")
    lam = torch.as_tensor(eigenvalues, dtype=torch.float64).flatten().sort(descending=True).values
    pos = lam.clamp_min(0.0)
    return EffectiveDimensionality(float((pos / (pos + z)).sum()), float(z), lam, int((lam <= 0).sum()), converged)


@measures_model
def effective_dimensionality(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                             batch: Batch, *, z: float, k: int = 20,
                             rel_tol: float = 1e-4, max_iter: int = 200,
                             seed: int = 0) -> EffectiveDimensionality:
    """N_eff(z) from the top-k Hessian eigenvalues (Lanczos, see `sharpness`).

    Args:
        model, loss_fn, batch: as in `sharpness` (model never modified).
        z: > 0, regularization scale in eigenvalue units.
        k: number of top eigenvalues; N_eff ignores the rest, so choose k with
            lambda_k << z for an accurate value.
        rel_tol, max_iter, seed: passed to `sharpness`.

    Algorithm:
        One Lanczos run for the top k (cost: ~k to a few k HVPs), then the sum.

    Source:
        Maddox, Benton & Wilson (2020), eq. (2).

    Failure modes:
        Truncation: if lambda_k is not << z the value is an underestimate.
    """
    r = sharpness(model, loss_fn, batch, k=k, rel_tol=rel_tol, max_iter=max_iter, seed=seed)
    return effective_dimensionality_from_eigenvalues(r.eigenvalues, z, converged=r.converged)
