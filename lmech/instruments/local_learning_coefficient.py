"""Local learning coefficient (LLC) by SGLD sampling of the localized tempered posterior.

One job: hat-lambda(w*) = n beta (E_w[L_n(w)] - L_n(w*)) at the model's current
parameters w*. It ignores the global learning coefficient and sampler tuning
(the caller chooses epsilon and gamma and reads the chain trace).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor
from torch.func import grad_and_value, vmap

from lmech.instruments._call import Batch, functional_outputs, num_examples, take
from lmech.instruments._hvp import loss_at, param_layout, unflatten_params
from lmech.instruments._json import JsonResult
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["LocalLearningCoefficient", "local_learning_coefficient"]


@dataclass(frozen=True)
class LocalLearningCoefficient(JsonResult):
    """LLC estimate, its spread over chains, the chains' loss traces and the settings.

    Attributes:
        estimate: hat-lambda, mean over chains (dimensionless; d/2 for a regular
            model with d parameters).
        standard_error: std over chains / sqrt(chains) (NaN for one chain).
        chain_estimates: (K,) per-chain hat-lambda.
        loss_trace: (K, S) float64 minibatch loss at each SGLD step (before the
            step), so convergence can be judged; the first `num_burnin` columns
            are excluded from the estimate.
        init_loss: L_n(w*) on the whole data set.
        n, beta, epsilon, gamma, num_steps, num_burnin, batch_size: the settings
            actually used (batch_size = n for full batch).
    """

    estimate: float
    standard_error: float
    chain_estimates: Float[Tensor, " K"]
    loss_trace: Float[Tensor, "K S"]
    init_loss: float
    n: int
    beta: float
    epsilon: float
    gamma: float
    num_steps: int
    num_burnin: int
    batch_size: int


@measures_model
def local_learning_coefficient(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                               data: Batch, *, epsilon: float = 1e-4,
                               gamma: float = 100.0, beta: float | None = None,
                               num_chains: int = 4, num_steps: int = 1000, num_burnin: int = 100,
                               batch_size: int | None = None, seed: int = 0) -> LocalLearningCoefficient:
    """Estimate the local learning coefficient at the model's parameters w* by SGLD.

    Args:
        model: any module; its parameters are w*. Chains run on copies via
            functional_call; the model is never modified.
        loss_fn: (outputs, targets) -> mean loss over the batch; for the
            theory's d/2 it should be an average negative log-likelihood (any
            positive scaling of a quadratic loss gives the same limit).
        data: (inputs (n, ...), targets (n, ...)), the training set of size n.
        epsilon: SGLD step size (the noise variance per step).
        gamma: localization strength, pulling w toward w*.
        beta: inverse temperature; default 1 / log n (the WBIC temperature).
        num_chains: K independent chains, all started at w*.
        num_steps: S SGLD steps per chain (including burn-in).
        num_burnin: initial steps dropped from the estimate.
        batch_size: minibatch size m (None: full batch, deterministic gradient).
        seed: seeds minibatches and Gaussian noise (one derived stream per chain).

    Algorithm:
        Lau et al. (2023) Algorithm 1: w <- w + (epsilon / 2) [gamma (w* - w)
        - n beta grad L_m(w)] + N(0, epsilon I); hat-lambda = n beta (mean of
        L_m(w_t) over post-burn-in steps and chains - L_n(w*)). Cost: K * S
        minibatch gradients, all chains advanced together by one vmapped
        grad call per step.

    Source:
        Lau, Furman, Wang, Murfet & Wei (2023) "The local learning coefficient:
        a singularity-aware complexity measure" (the SGLD-based estimator,
        their Algorithm 1); Watanabe (2013) "A widely applicable Bayesian
        information criterion" (beta = 1 / log n).

    Failure modes:
        Too large epsilon (epsilon * n * beta * lambda_max(H) >~ 1) diverges or
        inflates the estimate; too small gamma lets chains leave the basin;
        too large gamma pins chains and biases the estimate low (each
        direction contributes n beta h / (n beta h + gamma) / 2 instead of 1/2).
        If w* is not a local minimum the estimate can be negative. Read
        loss_trace: it should plateau after burn-in. The model must treat
        samples independently under vmap (BatchNorm in train mode does not:
        call model.eval()).
    """
    inputs, targets = data
    n = num_examples(inputs)
    if n < 2:
        raise ValueError("need at least 2 data points")
    if not 0 <= num_burnin < num_steps:
        raise ValueError(f"need 0 <= num_burnin < num_steps, got {num_burnin}, {num_steps}")
    m = n if batch_size is None else batch_size
    if not 1 <= m <= n:
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
    beta = 1.0 / math.log(n) if beta is None else beta
    layout = param_layout(model)
    named = dict(model.named_parameters())
    w_star = torch.cat([named[k].detach().reshape(-1) for k in layout.names]).clone()
    with torch.no_grad():
        init_loss = float(loss_at(model, loss_fn, data, unflatten_params(w_star, layout)))
    nb = n * beta
    gens = [generator(seed, f"llc-chain-{c}") for c in range(num_chains)]
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    frozen = {k: p.detach() for k, p in model.named_parameters() if k not in layout.names}

    def chain_loss(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        params = {**unflatten_params(w, layout), **frozen, **buffers}
        return loss_fn(functional_outputs(model, params, x), y)

    # One vmapped call advances every chain: (K, P) states, per-chain minibatches.
    step_fn = vmap(grad_and_value(chain_loss), in_dims=(0, None, None) if m == n else (0, 0, 0))
    w = w_star.expand(num_chains, -1).clone()
    traces = torch.zeros(num_chains, num_steps, dtype=torch.float64)
    for t in range(num_steps):
        if m == n:
            grads, losses = step_fn(w, inputs, targets)
        else:
            idx = torch.stack([torch.randperm(n, generator=gc)[:m] for gc in gens])
            grads, losses = step_fn(w, take(inputs, idx), take(targets, idx))
        traces[:, t] = losses.detach().double()
        noise = torch.stack([torch.randn(w.shape[1], generator=gc, dtype=torch.float64) for gc in gens])
        w = w + 0.5 * epsilon * (gamma * (w_star - w) - nb * grads) + math.sqrt(epsilon) * noise.to(w)
    chain_est = nb * (traces[:, num_burnin:].mean(dim=1) - init_loss)
    se = float(chain_est.std() / num_chains**0.5) if num_chains > 1 else float("nan")
    return LocalLearningCoefficient(float(chain_est.mean()), se, chain_est, traces, init_loss, n, beta,
                                    epsilon, gamma, num_steps, num_burnin, m)
