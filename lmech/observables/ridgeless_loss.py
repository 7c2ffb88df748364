"""Exact population loss of a linear random-feature model, and of the min-norm solution GD converges to."""

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.observables.mode_strength import end_to_end_map
from lmech.train.loop import TrainState

__all__ = ["ridgeless_loss"]

_KEYS = ("spectrum", "projection", "teacher", "features_train", "targets_train")


def _population(lam: Tensor, u: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """E_x (phi.b - w.x)^2 = (U^T b - w)^T Lambda (U^T b - w); b (N,) -> scalar."""
    e = u.T @ b - w
    return (lam * e * e).sum()


def ridgeless_loss(state: TrainState) -> dict[str, Tensor]:
    """ridgeless_loss/min_norm (K,) and ridgeless_loss/model (K,): exact noise-free test MSE, in units of y^2.

    ``population_loss``: the current linear model's ``E_x (f(x) - w.x)^2`` over
    the latent law, computed from the task extras (no test-set noise).
    ``ridgeless_loss``: the same for the minimum-norm least-squares solution
    on the member's training set, i.e. the limit of the GD run from zero init
    (GD stays in the row space of the features), reached here in closed form
    because GD on power-law features is slow (condition number ~ lambda_1 /
    lambda_min(P, N)). It does not depend on the current parameters.

    Needs the power_law_features task and a bias-free linear model
    (depth 0). With per-member data each member uses its own extras.

    Algorithm: min-norm solution by float64 ``torch.linalg.lstsq`` (driver
    gelsd, SVD-based, min-norm when rank-deficient) on extras
    "features_train" (P, N), "targets_train" (P,); loss ``(U^T b - w)^T
    Lambda (U^T b - w)``. Cost O(K (P N min(P, N) + N M)).

    Source: Maloney, Roberts & Sully 2022 (arXiv:2210.16859), Sec. 2: the
    ridgeless limit of the generalized random-feature model.

    Failure modes: near P = N the interpolant's norm blows up and the loss
    is dominated by the smallest singular value (double-descent peak).
    """
    tasks = state.tasks
    if not all(all(k in t.extras for k in _KEYS) for t in tasks):
        raise InputError("ridgeless_loss needs the power_law_features task (spectrum, projection, teacher)")
    net = end_to_end_map(state)[:, :, 0].double()  # (K, N)
    k_members = net.shape[0]
    ridgeless, population = [], []
    for k in range(k_members):
        ex = tasks[k if len(tasks) > 1 else 0].extras
        lam, u, w = ex["spectrum"], ex["projection"], ex["teacher"]
        b = torch.linalg.lstsq(ex["features_train"], ex["targets_train"][:, None], driver="gelsd").solution[:, 0]
        ridgeless.append(_population(lam, u, w, b))
        population.append(_population(lam, u, w, net[k]))
    return {"min_norm": torch.stack(ridgeless).float(), "model": torch.stack(population).float()}
