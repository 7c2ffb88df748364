"""Simple gradient noise scale B_simple = tr(Sigma) / |G|^2 from two batch sizes.

One job: the critical-batch-size proxy of McCandlish et al. from gradient norms
at a small and a big batch. It ignores the Hessian-weighted B_noise.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lmech.instruments._call import Batch, num_examples, take
from lmech.instruments._hvp import loss_at, param_layout, unflatten_params
from lmech.instruments._json import JsonResult
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["GradientNoiseScale", "gradient_noise_scale"]


@dataclass(frozen=True)
class GradientNoiseScale(JsonResult):
    """B_simple and its two ingredients, averaged over batch pairs.

    Attributes:
        b_simple: trace_sigma / grad_norm_sq (examples).
        grad_norm_sq: unbiased estimate of |G|^2, G the full-data mean gradient
            (loss units^2 per parameter unit^2).
        trace_sigma: unbiased estimate of tr(Sigma), Sigma the per-example
            gradient covariance (same units).
        grad_norm_sq_se, trace_sigma_se: standard errors over pairs (std / sqrt(pairs)).
        num_pairs, small_batch, big_batch: the sampling settings.
    """

    b_simple: float
    grad_norm_sq: float
    trace_sigma: float
    grad_norm_sq_se: float
    trace_sigma_se: float
    num_pairs: int
    small_batch: int
    big_batch: int


@measures_model
def gradient_noise_scale(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                         data: Batch, *, small_batch: int, big_batch: int,
                         num_pairs: int = 10, replacement: bool = True,
                         seed: int = 0) -> GradientNoiseScale:
    """Estimate B_simple = tr(Sigma) / |G|^2 on a data set.

    Args:
        model: any module (not modified; gradients via functional_call on copies).
        loss_fn: (outputs, targets) -> mean loss over the batch.
        data: (inputs (N, ...), targets (N, ...)), the data the batches are drawn from.
        small_batch, big_batch: B_small < B_big.
        num_pairs: independent (small, big) batch pairs; estimates are averaged.
        replacement: draw batch indices with replacement, which makes the
            estimators exactly unbiased for the data set's own G and Sigma;
            without replacement the finite-population factor (N - B)/(N - 1)
            biases tr(Sigma) low when B is not << N.
        seed: seeds the batch draws.

    Algorithm:
        Per pair, |G|^2 ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
        and tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big); both are
        averaged over pairs before the ratio (the ratio of means, as the paper
        advises). Cost: num_pairs * (B_small + B_big) per-example gradients.

    Source:
        McCandlish, Kaplan, Amodei et al. (2018) "An empirical model of
        large-batch training", Appendix A.1, eqs. A.2 and A.3 (B_simple: eq. 2.8).

    Failure modes:
        The |G|^2 estimate can be negative when the signal is small (late in
        training, small batches); b_simple is then meaningless (reported as is).
        The ratio of two noisy means is biased for few pairs.
    """
    n = num_examples(data[0])
    if not 0 < small_batch < big_batch:
        raise ValueError(f"need 0 < small_batch < big_batch, got {small_batch}, {big_batch}")
    if not replacement and big_batch > n:
        raise ValueError(f"big_batch={big_batch} exceeds the data size {n} without replacement")
    if num_pairs < 1:
        raise ValueError("num_pairs must be >= 1")
    layout = param_layout(model)
    named = dict(model.named_parameters())
    theta = torch.cat([named[k].detach().reshape(-1) for k in layout.names])
    g = generator(seed, "gradient-noise-scale-batches")

    def grad_norm_sq(batch_size: int) -> float:
        idx = (torch.randint(0, n, (batch_size,), generator=g) if replacement
               else torch.randperm(n, generator=g)[:batch_size])
        leaves = theta.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_at(model, loss_fn, (take(data[0], idx), take(data[1], idx)), unflatten_params(leaves, layout))
            (grad,) = torch.autograd.grad(loss, leaves)
        return float(grad.double().pow(2).sum())

    b_s, b_b = float(small_batch), float(big_batch)
    g2, tr = [], []
    for _ in range(num_pairs):
        small, big = grad_norm_sq(small_batch), grad_norm_sq(big_batch)
        g2.append((b_b * big - b_s * small) / (b_b - b_s))
        tr.append((small - big) / (1.0 / b_s - 1.0 / b_b))
    g2_t, tr_t = torch.tensor(g2, dtype=torch.float64), torch.tensor(tr, dtype=torch.float64)
    se = (lambda t: float(t.std() / len(t) ** 0.5) if len(t) > 1 else float("nan"))
    return GradientNoiseScale(float(tr_t.mean() / g2_t.mean()), float(g2_t.mean()), float(tr_t.mean()),
                              se(g2_t), se(tr_t), num_pairs, small_batch, big_batch)
