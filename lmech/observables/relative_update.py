"""Relative size of the latest update, |dW| / |W|, per parameter tensor and member."""

from torch import Tensor

from lmech.train.loop import TrainState

__all__ = ["relative_update"]


def relative_update(state: TrainState) -> dict[str, Tensor]:
    """relative_update/<name> (K,): |theta_t - theta_{t-1}|_F / |theta_{t-1}|_F (0 at step 0).

    A scale-free measure of how fast each layer moves (muP aims to keep it
    width-independent; Yang & Hu 2021). Cost: one pass over P.
    """
    out = {}
    for name, p in state.params.items():
        delta = state.last_update[name].detach().flatten(1).norm(dim=1)
        before = (p.detach() - state.last_update[name]).flatten(1).norm(dim=1)
        out[name] = delta / before.clamp_min(1e-30)
    return out
