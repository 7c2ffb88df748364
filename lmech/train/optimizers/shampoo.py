"""Shampoo's update of one stacked parameter, for all K members at once.

One job: accumulate the per-axis Kronecker statistics, refresh their inverse roots every
`precondition_every` steps, and precondition the gradient. It ignores grafting and any other
optimizer's direction (none is used: this is the paper's algorithm).
"""

from torch import Tensor

from lmech.train.optimizers.kronecker import (accumulate, factored_axes, identities, inverse_root, mode_gram,
                                              mode_product)

__all__ = ["shampoo_update"]


def shampoo_update(pname: str, param: Tensor, grad: Tensor, state: dict[str, dict[str, Tensor]], lr: Tensor,
                   weight_decay: Tensor, momentum: Tensor, step: int, eps: float, beta: float,
                   every: int, max_dim: int, use_momentum: bool) -> Tensor:
    """The update (new - old) of parameter `pname`; its buffers in `state` are made or updated in place.

    Args:
        param, grad: (K, d_1, ..., d_n). lr, weight_decay, momentum: per member ((K, 1, ...)).
        state: groups "stat{i}" and "root{i}" ((K, d_i, d_i), i a factored axis) and
            "momentum_buffer" ((K, ...), when use_momentum), keyed by parameter name.
        step: 1-based. beta: statistics decay (1: sums). every: steps between root refreshes.

    Algorithm (Gupta et al. 2018, Algorithm 2, order-k tensors): with k the number of factored
    axes (`kronecker.factored_axes`), L_i <- eps I at the start, then every step
    L_i <- L_i + G_(i) G_(i)^T (beta = 1) or beta L_i + (1 - beta) G_(i) G_(i)^T; at steps
    1, 1 + every, ... P_i = L_i^(-1/(2k)); the direction G x_1 P_1 ... x_k P_k (a vector: full-matrix
    AdaGrad, L^(-1/2) g); torch SGD's momentum on it when use_momentum; delta = -lr (direction + wd W).
    Cost: a d_i x d_i eigh per axis every `every` steps; (sum d_i) * numel multiply-adds a step.

    Failure modes: no grafting, so the step size is the paper's, not a tuned Adam's; with stale
    roots (every > 1) a small eps amplifies directions the statistics have not seen yet (eps^(-1/(2k))),
    so eps near 1e-4 suits it better than Adam's 1e-8; axes longer than max_dim are left
    unpreconditioned (and a tensor with none is plain SGD).
    """
    axes = factored_axes(tuple(param.shape[1:]), max_dim)
    direction = grad
    for i in axes:
        stats = state.setdefault(f"stat{i}", {})
        if pname not in stats:
            d = param.shape[1 + i]
            stats[pname] = eps * identities(param, d)
        accumulate(stats[pname], mode_gram(grad, i), beta)
        roots = state.setdefault(f"root{i}", {})
        if (step - 1) % every == 0 or pname not in roots:
            roots[pname] = inverse_root(stats[pname], 2.0 * len(axes), eps)
        direction = mode_product(direction, roots[pname], i)
    if use_momentum:
        buffers = state.setdefault("momentum_buffer", {})
        if pname not in buffers:
            buffers[pname] = direction.clone()
        else:
            buffers[pname].mul_(momentum).add_(direction)
        direction = buffers[pname]
    delta = direction * -lr
    if bool(weight_decay.any()):
        delta = delta - lr * weight_decay * param
    return delta

