"""Frobenius norm of each parameter tensor, per member."""

from torch import Tensor

from lmech.train.loop import TrainState

__all__ = ["param_norm"]


def param_norm(state: TrainState) -> dict[str, Tensor]:
    """param_norm/<name> (K,) for each parameter (e.g. W0, b0), and param_norm/total. Cost: one pass over P."""
    out = {name: p.detach().flatten(1).norm(dim=1) for name, p in state.params.items()}
    squares = sum(v.pow(2) for v in out.values())
    out["total"] = squares.sqrt()
    return out
