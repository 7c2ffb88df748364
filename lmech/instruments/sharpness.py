"""Sharpness: the top-k eigenvalues of the loss Hessian, by Lanczos with an error bound.

One job: the largest (algebraic) Hessian eigenvalues of a batch loss. It ignores
the rest of the spectrum (see `spectral_density.py`) and preconditioning (see
`preconditioned_sharpness.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch
from lmech.instruments._hvp import HVP, make_hvp
from lmech.instruments._json import JsonResult
from lmech.instruments._lanczos import rounding_floor, top_eigenpairs
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["Sharpness", "sharpness", "start_vector"]


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
            never larger than residual_bounds. Both are at least the rounding
            floor of the arithmetic (`_lanczos.rounding_floor`: eps * sqrt(P) * |value|).
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


@measures_model
def sharpness(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
              batch: Batch, *, k: int = 1, rel_tol: float = 1e-6,
              max_iter: int = 100, seed: int = 0,
              start: Literal["pullback", "gaussian"] = "pullback") -> Sharpness:
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
        seed: seeds the start vector's Gaussian draws.
        start: "pullback" (default): a Gaussian vector plus an equal-norm
            output-space Gaussian pulled back through the Jacobian (see
            `start_vector`); "gaussian": the Gaussian vector alone.

    Returns:
        Sharpness with eigenvalues (k,), residual and error bounds, HVP count,
        converged flag.

    Algorithm:
        Lanczos with full reorthogonalization on the double-backward HVP whose
        first-order graph is built once (`_hvp.make_hvp`), started from
        `start_vector`. Cost: one gradient (the graph build; no other
        gradient), one output pullback (a backward pass through the forward
        graph, cheaper than an HVP; start="pullback" only), plus `hvp_count`
        HVPs (about two gradients each) and O(m^2 P) for
        reorthogonalization. The residual
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
        one first (improbable with a Gaussian start, which the pullback start
        keeps at half its energy; rerun with another seed to check). float32 models cannot reach rel_tol much below ~1e-6.
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
    if start not in ("pullback", "gaussian"):
        raise ValueError(f"start must be 'pullback' or 'gaussian', got {start!r}")
    v0 = start_vector(op, seed, pullback=start == "pullback")
    run, top = top_eigenpairs(op.matvec, v0, k, rel_tol, max_iter)
    floor = rounding_floor(run.ritz_values[top], op.theta.dtype, op.layout.size)
    return Sharpness(
        eigenvalues=torch.as_tensor(run.ritz_values[top].copy()),
        residual_bounds=torch.as_tensor(np.maximum(run.residuals[top], floor)),
        error_bounds=torch.as_tensor(np.maximum(run.error_bounds[top], floor)),
        hvp_count=run.steps,
        converged=run.converged,
        loss=op.loss,
    )


def start_vector(op: HVP, seed: int, *, pullback: bool = True) -> Tensor:
    """Lanczos start vector: z / |z| + J^T u / |J^T u|, z ~ N(0, I_P), u ~ N(0, I) in output space.

    Args:
        op: the HVP operator (layout, dtype and, if available, the output pullback).
        seed: seeds z ("sharpness-start", the same draw as the plain Gaussian
            start) and u ("sharpness-start-outputs").
        pullback: False, or no pullback available (non-tensor outputs), or
            J^T u = 0: z alone.

    Returns:
        (P,) in the parameters' dtype, not normalized.

    Algorithm:
        J^T u with Gaussian u is a Gaussian vector with covariance J^T J, which
        lives in the row space of the Jacobian, where the Gauss-Newton part
        J^T (d^2 loss / d out^2) J of the Hessian lives. The top Hessian
        eigenvectors of classifiers lie almost entirely in that space (outliers
        from the Gauss-Newton term; Sagun et al. 2017, Papyan 2019 Sec. 3,
        Gur-Ari et al. 2018), so J^T u carries more of the top eigenvector
        than an isotropic vector, whose overlap is 1/sqrt(P), and suppresses
        the near-zero bulk. Cost: one backward pass through the forward graph
        (no second-order terms). The isotropic part z carries half the energy, so an
        eigenvector orthogonal to the Jacobian's row space (curvature from the
        loss-residual term only, or a gradient orthogonal to it) is still
        found as with a Gaussian start: its start component is only 1/sqrt(2)
        smaller. Lanczos' convergence bound (Saad, Numerical Methods for Large
        Eigenvalue Problems, Thm 6.4: error <= (lambda_1 - lambda_n) tan^2
        angle(v0, u_1) / T_{m-1}(1 + 2 gamma)^2) gains through the angle only;
        the near-top cluster is not suppressed (gamma is unchanged), so the
        saving in Lanczos steps is small. Measured HVP counts against the
        Gaussian start, the pullback weighting and the rejected gradient
        start: bench/NOTES.md, `sharpness.start_vector`. Only where the start
        comes from changes; the stopping rule and its bound are unchanged.

    Source:
        Gauss-Newton / outlier structure: Sagun et al. (2017) "Empirical
        analysis of the Hessian of over-parametrized neural networks";
        Papyan (2019) "Measurements of three-level hierarchical structure in
        the outliers in the spectrum of deepnet Hessians"; Gur-Ari, Roberts &
        Dyer (2018) "Gradient descent happens in a tiny subspace".
    """
    z = torch.randn(op.layout.size, generator=generator(seed, "sharpness-start"), dtype=torch.float64)
    z = z.to(op.theta)  # the parameters' dtype and device
    if not pullback or op.pullback is None:
        return z
    u = torch.randn(op.output_shape, generator=generator(seed, "sharpness-start-outputs"), dtype=torch.float64)
    ju = op.pullback(u.to(op.theta)).to(op.theta)
    norm = torch.linalg.vector_norm(ju)
    if not (torch.isfinite(norm) and norm > 0):
        return z
    return z / torch.linalg.vector_norm(z) + ju / norm
