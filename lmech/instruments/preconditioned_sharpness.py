"""Preconditioned sharpness: the top eigenvalue of P^{-1} H for a diagonal preconditioner P.

One job: the stability-relevant curvature of adaptive optimizers (Adam's P =
diag(sqrt(v_hat) + eps)). It ignores the optimizer's momentum dynamics beyond the
optional (1 - beta1^t) factor, and non-diagonal preconditioners.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch
from lmech.instruments._hvp import ParamLayout, flatten_params, make_hvp, param_layout
from lmech.instruments._json import JsonResult
from lmech.instruments._lanczos import rounding_floor, top_eigenpairs
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["PreconditionedSharpness", "preconditioned_sharpness", "adam_preconditioner"]


@dataclass(frozen=True)
class PreconditionedSharpness(JsonResult):
    """Top-k eigenvalues of P^{-1} H (equal to those of P^{-1/2} H P^{-1/2}).

    Attributes:
        eigenvalues: (k,) float64, descending; units of loss per (parameter unit^2
            * preconditioner unit), i.e. compare with 2/lr-type thresholds.
        residual_bounds: (k,) float64 residual bounds in the symmetric form.
        error_bounds: (k,) float64 min(residual, residual^2 / gap) error
            estimates, as in `Sharpness`.
        hvp_count: Hessian-vector products used.
        converged: every value met error_bound <= rel_tol * |value|.
    """

    eigenvalues: Float[Tensor, " k"]
    residual_bounds: Float[Tensor, " k"]
    error_bounds: Float[Tensor, " k"]
    hvp_count: int
    converged: bool


def adam_preconditioner(optimizer: torch.optim.Optimizer, model: torch.nn.Module, *,
                        momentum_bias_correction: bool = False) -> Float[Tensor, " P"]:
    """Adam's diagonal preconditioner P = sqrt(v_hat) + eps as a flat (P,) vector (a copy).

    Args:
        optimizer: torch.optim.Adam or AdamW that has stepped at least once on
            the model's trainable parameters (reads exp_avg_sq, step, betas, eps).
        model: the module whose `named_parameters()` order defines the flat layout.
        momentum_bias_correction: multiply by (1 - beta1^t), Cohen et al. (2022)'s
            P_t, which makes the threshold (2 + 2 beta1) / ((1 - beta1) lr) exact.

    Returns:
        (P,) tensor, v_hat = exp_avg_sq / (1 - beta2^t), in the parameters' dtype.

    Failure modes:
        Raises KeyError if a parameter has no optimizer state (never stepped or
        not in the optimizer); amsgrad's max_exp_avg_sq is not used.
    """
    layout = param_layout(model)
    named = dict(model.named_parameters())
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    diag = {}
    for n in layout.names:
        p = named[n]
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state or id(p) not in group_of:
            raise KeyError(f"no Adam state for parameter {n!r}; step the optimizer first")
        group = group_of[id(p)]
        beta1, beta2 = group["betas"]
        t = float(state["step"])
        d = (state["exp_avg_sq"].detach() / (1 - beta2 ** t)).sqrt() + group["eps"]
        diag[n] = d * (1 - beta1 ** t) if momentum_bias_correction else d
    return flatten_params(diag, layout).clone()


def _as_flat(preconditioner: Tensor | dict[str, Tensor], layout: ParamLayout) -> Tensor:
    if isinstance(preconditioner, dict):
        return flatten_params(preconditioner, layout)
    if preconditioner.shape != (layout.size,):
        raise ValueError(f"preconditioner has shape {tuple(preconditioner.shape)}, expected ({layout.size},)")
    return preconditioner


@measures_model
def preconditioned_sharpness(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                             batch: Batch,
                             preconditioner: Float[Tensor, " P"] | dict[str, Tensor], *, k: int = 1,
                             rel_tol: float = 1e-6, max_iter: int = 100,
                             seed: int = 0) -> PreconditionedSharpness:
    """Top-k eigenvalues of P^{-1} H, P = diag(preconditioner) > 0.

    Args:
        model, loss_fn, batch: as in `sharpness` (model never modified).
        preconditioner: diagonal of P, a flat (P,) tensor in `named_parameters()`
            order of the trainable parameters, or a {name: tensor} dict; see
            `adam_preconditioner`. Must be strictly positive.
        k, rel_tol, max_iter, seed: as in `sharpness`.

    Algorithm:
        Lanczos on the symmetric S = P^{-1/2} H P^{-1/2} (same eigenvalues as
        P^{-1} H, which is similar to S), one HVP per step; same error-bound
        stopping rule as `sharpness` (min(r, r^2 / gap) <= rel_tol |theta|).

    Source:
        Cohen et al. (2022) "Adaptive gradient methods at the edge of
        stability", section 2 (preconditioned sharpness lambda_1(P_t^{-1} H_t),
        stability threshold (2 + 2 beta1) / ((1 - beta1) lr) = 38 / lr for beta1 = 0.9).

    Failure modes:
        Tiny P entries (eps-dominated coordinates) make S badly scaled and the
        float32 HVP's rounding is amplified by 1/min(P); rel_tol may then be
        unreachable (converged=False). Zero or negative entries raise.
    """
    op = make_hvp(model, loss_fn, batch)
    p_diag = _as_flat(preconditioner, op.layout).to(op.theta.dtype)
    if not bool(torch.all(p_diag > 0)):
        raise ValueError("preconditioner must be strictly positive")
    if k > op.layout.size:
        raise ValueError(f"k={k} exceeds the number of parameters ({op.layout.size})")
    inv_sqrt = p_diag.rsqrt()

    def matvec(v: Tensor) -> Tensor:
        return inv_sqrt * op.matvec(inv_sqrt * v)

    v0 = torch.randn(op.layout.size, generator=generator(seed, "preconditioned-sharpness-start"),
                     dtype=torch.float64).to(op.theta)
    run, top = top_eigenpairs(matvec, v0, k, rel_tol, max_iter)
    floor = rounding_floor(run.ritz_values[top], op.theta.dtype, op.layout.size)
    return PreconditionedSharpness(torch.as_tensor(run.ritz_values[top].copy()),
                                   torch.as_tensor(np.maximum(run.residuals[top], floor)),
                                   torch.as_tensor(np.maximum(run.error_bounds[top], floor)), run.steps, run.converged)
