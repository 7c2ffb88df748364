"""Hessian trace by Hutchinson's estimator with Rademacher probes, with its standard error.

One job: tr(H) of a batch loss and how uncertain the estimate is. It ignores the
spectrum's shape (see `spectral_density.py`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch
from lmech.instruments._hvp import make_hvp
from lmech.instruments._json import JsonResult
from lmech.seeding import generator
from lmech.instruments._state import measures_model

__all__ = ["HessianTrace", "hessian_trace"]


@dataclass(frozen=True)
class HessianTrace(JsonResult):
    """Hutchinson estimate of tr(H).

    Attributes:
        estimate: mean of v^T H v over probes (loss units per parameter unit^2).
        standard_error: sample std (ddof=1) / sqrt(num_probes); NaN for 1 probe.
        num_probes: probes used (= HVPs).
        converged: True if the rel_se_tol rule stopped the run (always True
            when no rule was given and all probes ran).
        samples: (num_probes,) float64, the individual v^T H v.
    """

    estimate: float
    standard_error: float
    num_probes: int
    converged: bool
    samples: Float[Tensor, " S"]


@measures_model
def hessian_trace(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                  batch: Batch, *, num_probes: int = 100,
                  rel_se_tol: float | None = None, min_probes: int = 10, probe_batch: int = 1,
                  seed: int = 0) -> HessianTrace:
    """Estimate tr(H) = E_v[v^T H v], v Rademacher (entries +-1 with probability 1/2).

    Args:
        model, loss_fn, batch: as in `sharpness` (model never modified).
        num_probes: probe count; the maximum when rel_se_tol is set.
        rel_se_tol: if given, stop once num_probes >= min_probes and
            standard_error <= rel_se_tol * |estimate| (checked after each probe batch).
        min_probes: probes before the rule is consulted (the sample std of very
            few probes is itself too noisy to stop on).
        probe_batch: probes per vmapped HVP call (memory grows with it). Default 1:
            on one CPU thread, vmapped batches measured slower per probe than one probe
            at a time (bench/NOTES.md, `hessian_trace.hessian_trace`).
        seed: seeds the probes; probe i is the same for any probe_batch.

    Algorithm:
        One first-order graph, then HVPs in batches of `probe_batch` through a
        vmapped double backward. Cost: num_probes HVPs. Var(v^T H v) =
        2 sum_{i != j} H_ij^2 for Rademacher v (Hutchinson 1990), so the error
        shrinks as 1/sqrt(probes) and is large when H has big off-diagonal mass.

    Source:
        Hutchinson (1990) "A stochastic estimator of the trace of the influence
        matrix"; Avron & Toledo (2011) for the variance.

    Failure modes:
        Near-zero traces (at initialization, with cancelling positive and
        negative curvature) make the relative rule unreachable: it then runs
        num_probes and returns converged=False. The standard error is itself an
        estimate; with < 10 probes it is unreliable.
    """
    if num_probes < 1 or probe_batch < 1:
        raise ValueError("num_probes and probe_batch must be >= 1")
    op = make_hvp(model, loss_fn, batch)
    g = generator(seed, "hutchinson-probes")
    samples: list[float] = []
    converged = rel_se_tol is None
    while len(samples) < num_probes:
        b = min(probe_batch, num_probes - len(samples))
        v = (torch.randint(0, 2, (b, op.layout.size), generator=g) * 2 - 1).to(op.theta)
        hv = op.matvec(v) if b > 1 else op.matvec(v[0])[None]
        samples.extend(torch.einsum("bp,bp->b", v.double(), hv.double()).tolist())
        if rel_se_tol is not None and len(samples) >= max(min_probes, 2):
            s = torch.tensor(samples, dtype=torch.float64)
            if float(s.std() / len(s) ** 0.5) <= rel_se_tol * abs(float(s.mean())):
                converged = True
                break
    s = torch.tensor(samples, dtype=torch.float64)
    se = float(s.std() / len(s) ** 0.5) if len(s) > 1 else float("nan")
    return HessianTrace(float(s.mean()), se, len(s), converged, s)
