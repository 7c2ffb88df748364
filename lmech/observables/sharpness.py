"""Sharpness: the top-k eigenvalues of the loss Hessian, by Lanczos with an error bound.

One job: the largest (algebraic) Hessian eigenvalues of a batch loss. It ignores
the rest of the spectrum (see `spectral_density.py`) and preconditioning (see
`preconditioned_sharpness.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.observables._hvp import make_hvp
from lmech.observables._json import JsonResult
from lmech.observables._lanczos import top_eigenpairs
from lmech.observables._rng import generator

__all__ = ["Sharpness", "sharpness"]


@dataclass(frozen=True)
class Sharpness(JsonResult):
    """Top-k Hessian eigenvalues.

    Attributes:
        eigenvalues: (k,) float64, descending by algebraic value, in loss units
            per parameter unit squared.
        residual_bounds: (k,) float64, ||H y - theta y|| for each Ritz pair: some
            eigenvalue of H lies within this distance of each reported value
            (rigorous, up to rounding).
        error_bounds: (k,) float64, min(residual, residual^2 / gap), the
            Kato-Temple estimate of |lambda - theta| with the gap estimated
            from the neighbouring Ritz pairs (see `_lanczos.ritz_error_bounds`);
            never larger than residual_bounds.
        hvp_count: Hessian-vector products used (= Lanczos steps).
        converged: every top-k value met error_bound <= rel_tol * |value|.
        loss: the batch loss at the parameters (float).
    """

    eigenvalues: Float[Tensor, " k"]
    residual_bounds: Float[Tensor, " k"]
    error_bounds: Float[Tensor, " k"]
    hvp_count: int
    converged: bool
    loss: float


def sharpness(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
              batch: tuple[Tensor, Tensor], *, k: int = 1, rel_tol: float = 1e-6,
              max_iter: int = 100, seed: int = 0) -> Sharpness:
    """Top-k eigenvalues of the Hessian of loss_fn(model(inputs), targets) w.r.t. the parameters.

    Args:
        model: any module; its trainable parameters (P scalars) define H (P, P).
            Not modified (functional_call on copies).
        loss_fn: (outputs, targets) -> scalar, mean over the batch.
        batch: (inputs (N, ...), targets (N, ...)).
        k: number of top eigenvalues (by algebraic value, so negative curvature
            never outranks positive).
        rel_tol: stop when every top-k Ritz value theta has error bound
            min(r, r^2 / gap) <= rel_tol * |theta|, r = |beta_m * s[-1]| the
            residual and gap the estimated distance to the rest of the spectrum.
        max_iter: Lanczos step cap (memory: an (max_iter, P) basis).
        seed: seeds the Gaussian start vector.

    Returns:
        Sharpness with eigenvalues (k,), residual and error bounds, HVP count,
        converged flag.

    Algorithm:
        Lanczos with full reorthogonalization on the double-backward HVP whose
        first-order graph is built once (`_hvp.make_hvp`). Cost: one gradient
        (the graph build; no other gradient) plus `hvp_count` HVPs (~1.9
        gradients each) and O(m^2 P) for reorthogonalization. The residual
        r = |beta_m s[-1]| bounds the distance to the nearest eigenvalue; the
        eigenvalue error is quadratic in it, |lambda - theta| <= r^2 / gap
        (Kato-Temple), so stopping on min(r, r^2 / gap) needs about half the
        Lanczos steps of a residual rule at the same accuracy. gap = theta_1 -
        (theta_2 + r_2) for the top value (theta_2, r_2: the next Ritz pair),
        the distance to the nearer neighbouring interval for the others.
        Unlike power iteration's relative-change rule, this bounds the error.

    Source:
        Lanczos (1950); Parlett, The Symmetric Eigenvalue Problem, Thm 13.1.1
        (residual bound) and Sec. 11.7 (Kato-Temple / gap bound); Saad,
        Numerical Methods for Large Eigenvalue Problems, Thm 4.6; sharpness as in Cohen et al. (2021) "Gradient descent
        on neural networks typically occurs at the edge of stability".

    Failure modes:
        Eigenvalues of multiplicity > 1 appear once (k returns the next distinct
        values); if the Krylov space from the start vector is invariant before k
        steps (e.g. H = c I), fewer than k values are returned, all exact. The bound says the value is near SOME eigenvalue: a start
        vector nearly orthogonal to the top eigenvector can converge on the next
        one first (improbable with a Gaussian start; rerun with another seed to
        check). float32 models cannot reach rel_tol much below ~1e-6.
        The error bound relies on the gap estimate: an eigenvalue between theta_1
        and theta_2 not yet seen by the Krylov space (theta_2 still converging,
        or a hidden eigenvector) makes the true gap smaller than estimated and
        the error bound too small by that ratio; residual_bounds stays rigorous.
        Clusters (gap <= 0) fall back to the residual bound.
        converged=False when max_iter ran out: read error_bounds.
    """
    op = make_hvp(model, loss_fn, batch)
    if k > op.layout.size:
        raise ValueError(f"k={k} exceeds the number of parameters ({op.layout.size})")
    v0 = torch.randn(op.layout.size, generator=generator(seed, "sharpness-start"),
                     dtype=torch.float64).to(op.theta.dtype)
    run, top = top_eigenpairs(op.matvec, v0, k, rel_tol, max_iter)
    return Sharpness(
        eigenvalues=torch.as_tensor(run.ritz_values[top].copy()),
        residual_bounds=torch.as_tensor(run.residuals[top].copy()),
        error_bounds=torch.as_tensor(run.error_bounds[top].copy()),
        hvp_count=run.steps,
        converged=run.converged,
        loss=op.loss,
    )
