"""SOAP's update of one stacked parameter: Adam in the eigenbasis of Shampoo's statistics.

One job: per-axis statistics, their eigenbases (eigh at the first step, then one power
iteration and QR every `precondition_every` steps), and Adam's moments in the rotated basis,
for all K members at once. It ignores merging axes (none are merged) and 1-D preconditioning
(vectors get plain Adam, as the reference code's default).
"""

import torch
from torch import Tensor

from lmech.train.optimizers.kronecker import accumulate, factored_axes, finite, mode_gram, mode_product

__all__ = ["soap_update", "TIE_BREAK", "tie_broken"]

TIE_BREAK = 1e-5


def tie_broken(statistics: Tensor) -> Tensor:
    """L + TIE_BREAK (tr L / d) diag(1/d, 2/d, ..., 1) for each member: the matrix SOAP's eigenbases
    are taken of. Ties (a rank-deficient L: any gradient of a non-square matrix at the first step)
    leave eigenvectors arbitrary within their eigenspace, so members trained alone and together
    (or on two devices) would start in different bases and drift far apart; the ramp picks one
    basis, stable under float64 rounding. Eigenvalue gaps far above 1e-5 tr L / d are unaffected."""
    d = statistics.shape[-1]
    ramp = torch.arange(1, d + 1, dtype=statistics.dtype, device=statistics.device) / d
    scale = statistics.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True) * TIE_BREAK  # (K, 1)
    return finite(statistics + torch.diag_embed(scale * ramp))


def _rotate(t: Tensor, bases: list[tuple[int, Tensor]], back: bool) -> Tensor:
    """Q_1^T ... into the eigenbasis (back=False), Q_1 ... out of it (back=True)."""
    for axis, basis in bases:
        t = mode_product(t, basis if back else basis.mT, axis)
    return t


def soap_update(pname: str, param: Tensor, grad: Tensor, state: dict[str, dict[str, Tensor]], lr: Tensor,
                weight_decay: Tensor, step: int, beta1: float, beta2: float, eps: float, beta: float,
                every: int, max_dim: int) -> Tensor:
    """The update (new - old) of parameter `pname`; its buffers in `state` are made or updated in place.

    Args:
        param, grad: (K, d_1, ..., d_n). lr, weight_decay: per member ((K, 1, ...)). step: 1-based.
        state: "exp_avg" (original basis) and "exp_avg_sq" (rotated basis), (K, ...); "stat{i}" and
            "basis{i}" ((K, d_i, d_i)) for each factored axis i, keyed by parameter name.
        beta: the statistics' decay (precondition_beta, 0.95 by default); every: refresh period f.

    Algorithm (Vyas et al. 2024, Algorithms 3 and 4, as the authors' code orders them): axes as
    `kronecker.factored_axes`, none for a tensor with fewer than two (then this is Adam).
    Step 1 only measures: L_i = G_(i) G_(i)^T, Q_i = the eigenvectors of L~_i = tie_broken(L_i) by
    descending eigenvalue; the parameter stays put. Step t > 1, with s = t - 1 Adam steps:
    G' = G x_i Q_i^T; m <- beta1 m + (1 - beta1) G; v <- beta2 v + (1 - beta2) G'^2;
    N' = (m x_i Q_i^T / (1 - beta1^s)) / (sqrt(v / (1 - beta2^s)) + eps) (torch Adam's form);
    delta = -lr (N' x_i Q_i + wd W); then L_i <- beta L_i + (1 - beta) G_(i) G_(i)^T (beta = 1: a sum)
    and, when s % f == 0, Q_i <- QR(L~_i Q_i) with columns ordered by the estimated eigenvalues
    diag(Q_i^T L~_i Q_i), descending, and v's axis i permuted to match. The tie break is lmech's;
    the authors' code adds 1e-30 I, which breaks no tie in float32 or float64.
    Cost: per factored axis, two mode products a step and a d_i x d_i QR every f steps.

    Failure modes: the first step does not move the parameters; directions the loss is exactly
    invariant to (e.g. a constant across the residual stream of a pre-LN transformer) have
    rounding-noise gradients, which the rotated Adam moves by about lr * noise / eps; in float32 the
    ramp's steps (1e-5 tr L / d^2) fall below rounding (6e-8 |L|) once d passes a few tens, so
    near-ties there stay implementation-defined.
    """
    member_shape = tuple(param.shape[1:])
    axes = factored_axes(member_shape, max_dim) if sum(d > 1 for d in member_shape) > 1 else []  # vectors: Adam
    exp_avg = state.setdefault("exp_avg", {})
    exp_avg_sq = state.setdefault("exp_avg_sq", {})
    if pname not in exp_avg:
        exp_avg[pname] = torch.zeros_like(param)
        exp_avg_sq[pname] = torch.zeros_like(param)
        for i in axes:
            stat = mode_gram(grad, i)
            state.setdefault(f"stat{i}", {})[pname] = stat
            state.setdefault(f"basis{i}", {})[pname] = torch.linalg.eigh(tie_broken(stat))[1].flip(-1)
        return torch.zeros_like(param)
    bases = [(i, state[f"basis{i}"][pname]) for i in axes]
    adam_steps = step - 1
    m, v = exp_avg[pname], exp_avg_sq[pname]
    rotated = _rotate(grad, bases, back=False)
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(rotated, rotated, value=1 - beta2)
    denom = (v / (1 - beta2**adam_steps)).sqrt_().add_(eps)
    direction = _rotate(_rotate(m, bases, back=False) / (1 - beta1**adam_steps) / denom, bases, back=True)
    delta = direction * -lr
    if bool(weight_decay.any()):
        delta = delta - lr * weight_decay * param
    for i, basis in bases:
        stat = state[f"stat{i}"][pname]
        accumulate(stat, mode_gram(grad, i), beta)
        if adam_steps % every == 0:
            power = torch.bmm(tie_broken(stat), basis)
            order = torch.argsort((basis * power).sum(-2), dim=-1, descending=True)  # (K, d_i)
            power = torch.take_along_dim(power, order.unsqueeze(-2), dim=-1)
            basis.copy_(torch.linalg.qr(power)[0])
            index_shape = [v.shape[0]] + [1] * (v.dim() - 1)
            index_shape[1 + i] = v.shape[1 + i]
            v.copy_(torch.take_along_dim(v, order.view(index_shape), dim=1 + i))
    return delta
