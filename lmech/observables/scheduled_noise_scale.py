"""The gradient noise scale B_simple scheduled inside lmech's trainers (`observe: {gradient_noise_scale: {...}}`).

One job: run the standalone `gradient_noise_scale` instrument on each ensemble
member's training set at the scheduled steps. It ignores the Hessian-weighted
B_noise and anything about batch-size sweeps (the `critical-batch` phenomenon
does those).
"""

import torch
from torch import Tensor

from lmech.observables._member import members
from lmech.observables.gradient_noise_scale import gradient_noise_scale
from lmech.train.loop import TrainState

__all__ = ["scheduled_gradient_noise_scale"]


def scheduled_gradient_noise_scale(state: TrainState, small_batch: int = 8, big_batch: int = 512,
                                   num_pairs: int = 10) -> dict[str, Tensor]:
    """b_simple, grad_norm_sq, trace_sigma (each (K,), float64) of every member at this step.

    Args:
        state: the trainer's state (not modified).
        small_batch, big_batch: the two batch sizes of the estimator (examples).
        num_pairs: (small, big) batch pairs averaged before the ratio.

    Algorithm:
        Per member, `gradient_noise_scale` on its full training set with batches
        drawn with replacement, seeded by (the member's run seed, step), so
        every observation uses fresh, reproducible batches, the same whether the
        member trains alone or in an ensemble. Cost: K * num_pairs *
        (small_batch + big_batch) per-example gradients (members are looped).

    Source:
        McCandlish, Kaplan, Amodei et al. 2018, "An empirical model of
        large-batch training", eq. 2.8 and Appendix A.1.

    Failure modes:
        As the standalone instrument: late in training the |G|^2 estimate is
        noisy and can be negative, making b_simple meaningless; few pairs bias
        the ratio.
    """
    columns: dict[str, list[float]] = {"b_simple": [], "grad_norm_sq": [], "trace_sigma": []}
    for member, module, loss_fn, batch in members(state):
        result = gradient_noise_scale(module, loss_fn, batch, small_batch=small_batch, big_batch=big_batch,
                                      num_pairs=num_pairs, seed=1_000_003 * state.specs[member].seed + state.step)
        columns["b_simple"].append(result.b_simple)
        columns["grad_norm_sq"].append(result.grad_norm_sq)
        columns["trace_sigma"].append(result.trace_sigma)
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in columns.items()}
