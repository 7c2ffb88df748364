"""Linear centered kernel alignment (CKA) between representations, and activation collection.

One job: similarity of two activation matrices on the same N examples, invariant
to orthogonal transforms and isotropic scaling. It ignores nonlinear (RBF) CKA.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._json import JsonResult
from lmech.instruments._state import measures_model

__all__ = ["CKA", "linear_cka", "collect_activations"]


@dataclass(frozen=True)
class CKA(JsonResult):
    """Linear CKA value.

    Attributes:
        value: CKA (dimensionless); in [0, 1] for the biased estimator, the
            debiased one can be slightly negative or above 1 for small N.
        debiased: whether the unbiased HSIC estimator was used.
        n: number of examples N.
    """

    value: float
    debiased: bool
    n: int


def _hsic_biased(k: Tensor, l: Tensor) -> Tensor:
    # tr(K H L H) up to the common 1/(N-1)^2 factor, which cancels in CKA.
    kc = k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()
    lc = l - l.mean(dim=0, keepdim=True) - l.mean(dim=1, keepdim=True) + l.mean()
    return (kc * lc).sum()


def _hsic_unbiased(k: Tensor, l: Tensor) -> Tensor:
    # Song et al. (2012) eq. (5), with zeroed diagonals; the 1/(N(N-3)) factor cancels in CKA.
    n = k.shape[0]
    k = k - torch.diag(torch.diagonal(k))
    l = l - torch.diag(torch.diagonal(l))
    ones = torch.ones(n, dtype=k.dtype)
    kl = k @ l
    return (torch.trace(kl) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (ones @ kl @ ones))


def linear_cka(x: Float[Tensor, "N D1"], y: Float[Tensor, "N D2"], *, debiased: bool = False) -> CKA:
    """Linear CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = X X^T, L = Y Y^T.

    Args:
        x: (N, D1) activations (any float dtype; computed in float64).
        y: (N, D2) activations of the same N examples in the same order.
        debiased: use the unbiased HSIC estimator (needs N >= 4), which removes
            the upward bias of CKA for D >> N.

    Algorithm:
        Biased: ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F) with
        column-centered X_c, Y_c, cost O(N D1 D2). Debiased: Gram matrices with
        the unbiased HSIC estimator, cost O(N^2 (D1 + D2) + N^3).

    Source:
        Kornblith, Norouzi, Lee & Hinton (2019) "Similarity of neural network
        representations revisited", eq. (5) (linear CKA); Song, Smola, Gretton,
        Bedo & Borgwardt (2012) "Feature selection via dependence maximization",
        eq. (5) (unbiased HSIC); Nguyen, Raghu & Kornblith (2021) for its use in CKA.

    Failure modes:
        Undefined (NaN) when either representation is constant across examples.
        The debiased value is noisy for small N.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"need (N, D1) and (N, D2) with equal N, got {tuple(x.shape)} and {tuple(y.shape)}")
    n = x.shape[0]
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    if debiased:
        if n < 4:
            raise ValueError("debiased CKA needs N >= 4")
        k, l = x64 @ x64.T, y64 @ y64.T
        hxy, hxx, hyy = _hsic_unbiased(k, l), _hsic_unbiased(k, k), _hsic_unbiased(l, l)
    else:
        xc, yc = x64 - x64.mean(dim=0), y64 - y64.mean(dim=0)
        hxy = torch.linalg.norm(yc.T @ xc) ** 2
        hxx, hyy = torch.linalg.norm(xc.T @ xc) ** 2, torch.linalg.norm(yc.T @ yc) ** 2
    return CKA(float(hxy / torch.sqrt(hxx * hyy)), debiased, n)


@measures_model
def collect_activations(model: torch.nn.Module, inputs: Tensor,
                        layer_names: list[str]) -> dict[str, Float[Tensor, "N D"]]:
    """Outputs of the named submodules on `inputs`, flattened to (N, D), via forward hooks.

    Args:
        model: any module; run under torch.no_grad. Hooks are removed afterwards
            (also on error). Note: the forward pass runs in the model's current
            mode; BatchNorm in train mode would update its running statistics,
            so put the model in eval mode first.
        inputs: (N, ...) batch.
        layer_names: names from `model.named_modules()`.

    Returns:
        {name: (N, D) detached copy of the submodule's output (first element if a tuple)}.

    Failure modes:
        A submodule called several times in one forward keeps the last call.
    """
    modules = dict(model.named_modules())
    missing = [n for n in layer_names if n not in modules]
    if missing:
        raise KeyError(f"unknown layer names: {missing}")
    out: dict[str, Tensor] = {}
    handles = []

    def hook_for(name: str):
        def hook(module: torch.nn.Module, args: tuple, output: Tensor | tuple) -> None:
            del module, args
            t = output[0] if isinstance(output, tuple) else output
            out[name] = t.detach().reshape(t.shape[0], -1).clone()
        return hook

    try:
        for n in layer_names:
            handles.append(modules[n].register_forward_hook(hook_for(n)))
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return {n: out[n] for n in layer_names}
