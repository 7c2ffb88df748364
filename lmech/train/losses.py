"""Per-member losses of stacked outputs: (K, N, ...) -> (K,), under the names of lmech.instruments.losses."""

from torch import Tensor

from lmech.instruments.losses import IGNORE_INDEX

__all__ = ["per_member_loss"]


def per_member_loss(outputs: Tensor, targets: Tensor, loss: str) -> Tensor:
    """Mean loss over examples for each member: outputs (K, N, C) or (K, N, T, V) -> (K,).

    half_sse: 0.5 * mean_n sum_c (f_nc - y_nc)^2 (targets (N, C) or (K, N, C)).
    mse: mean over all of a member's elements (torch.nn.functional.mse_loss).
    cross_entropy: mean over positions of -log softmax(f)[y] (targets (N,)/(N, T) shared or
    (K, N)/(K, N, T) per member, int64; positions with target -100 are left out).
    """
    if loss == "half_sse":
        return 0.5 * (outputs - targets).pow(2).sum(-1).flatten(1).mean(-1)
    if loss == "mse":
        return (outputs - targets).pow(2).flatten(1).mean(-1)
    k = outputs.shape[0]
    labels = targets.expand(k, *outputs.shape[1:-1]) if targets.dim() == outputs.dim() - 2 else targets
    # log-sum-exp written out: faster than F.cross_entropy on small (K, N, C) logits, where the
    # step of a tiny model is overhead-bound (bench/NOTES.md, `losses.per_member_loss`); the max
    # shift keeps it stable.
    shifted = outputs - outputs.detach().amax(-1, keepdim=True)
    log_partition = shifted.exp().sum(-1).log()
    keep = labels != IGNORE_INDEX
    picked = shifted.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = (log_partition - picked).flatten(1)
    if labels.dim() == 2 and bool(keep.all()):  # (K, N) labels, nothing ignored: the common fast case
        return nll.mean(-1)
    keep = keep.flatten(1).to(nll.dtype)
    return (nll * keep).sum(-1) / keep.sum(-1)

