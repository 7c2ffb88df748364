"""Weight-matrix empirical spectral densities and their power-law tail exponents.

One job: per 2-D weight, the eigenvalues of W^T W (the ESD) and a Clauset-style
power-law fit of the tail (heavy-tailed self-regularization). It ignores
biases/1-D parameters and the random-matrix bulk fit (Marchenko-Pastur).
"""

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from lmech.observables._json import JsonResult

__all__ = ["LayerSpectrum", "WeightSpectrum", "weight_spectrum", "fit_power_law"]


@dataclass(frozen=True)
class LayerSpectrum(JsonResult):
    """ESD and tail fit of one weight matrix W (out, in) (higher-D weights reshaped to (out, -1)).

    Attributes:
        eigenvalues: (min(out, in),) float64, eigenvalues of W^T W, descending
            (squared singular values; parameter units^2).
        alpha: fitted exponent of p(x) ~ x^-alpha for x >= xmin (NaN if not fitted).
        alpha_standard_error: (alpha - 1) / sqrt(n_tail) (Clauset et al. eq. 3.2).
        xmin: lower end of the fitted tail (eigenvalue units).
        ks_distance: Kolmogorov-Smirnov distance between the tail and the fit.
        n_tail: eigenvalues >= xmin used in the fit.
        fitted: False when the layer had fewer than `min_eigenvalues` eigenvalues.
        note: why it was not fitted ('' when fitted).
    """

    eigenvalues: Float[Tensor, " E"]
    alpha: float
    alpha_standard_error: float
    xmin: float
    ks_distance: float
    n_tail: int
    fitted: bool
    note: str


@dataclass(frozen=True)
class WeightSpectrum(JsonResult):
    """{parameter name: LayerSpectrum} for every weight with >= 2 dimensions."""

    layers: dict[str, LayerSpectrum]


def fit_power_law(x: np.ndarray, *, min_tail: int = 10) -> tuple[float, float, float, int]:
    """Continuous power-law MLE with xmin chosen by minimal KS distance.

    Args:
        x: (E,) positive samples (non-positive ones are dropped).
        min_tail: smallest tail size considered for xmin candidates.

    Returns:
        (alpha, xmin, ks_distance, n_tail).

    Algorithm:
        For every candidate xmin = x_(j) leaving >= min_tail points, alpha =
        1 + n [sum ln(x_i / xmin)]^-1 (eq. 3.1), and D = max_x |S(x) - P(x)|
        with the fitted CDF P(x) = 1 - (x / xmin)^(1 - alpha) and the tail's
        empirical CDF S (both sides of each step); keep the xmin with
        the smallest D (section 3.3). Cost O(E^2).

    Source:
        Clauset, Shalizi & Newman (2009) "Power-law distributions in empirical
        data", eq. 3.1 (MLE), eq. 3.2 (standard error) and section 3.3 (xmin by KS); Martin & Mahoney (2021)
        "Implicit self-regularization in deep neural networks", JMLR.

    Failure modes:
        Not a goodness-of-fit test: a small D does not prove a power law. Ties
        at xmin (repeated values) make that candidate's alpha meaningless; the
        last min_tail - 1 points are never candidates.
    """
    x = np.sort(np.asarray(x, dtype=np.float64)[np.asarray(x) > 0])
    n = len(x)
    if n < min_tail or min_tail < 2:
        raise ValueError(f"need >= min_tail={min_tail} >= 2 positive samples, got {n}")
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[j] = sum_{i >= j} ln x_i
    best = (np.nan, np.nan, np.inf, 0)
    for j in range(n - min_tail + 1):
        nt = n - j
        denom = suffix[j] - nt * logs[j]
        if denom <= 0:
            continue
        alpha = 1.0 + nt / denom
        cdf = 1.0 - (x[j:] / x[j]) ** (1.0 - alpha)
        steps = np.arange(nt)
        d = max(np.max(np.abs((steps + 1) / nt - cdf)), np.max(np.abs(steps / nt - cdf)))
        if d < best[2]:
            best = (alpha, float(x[j]), float(d), nt)
    return best


def weight_spectrum(model: torch.nn.Module, *, min_eigenvalues: int = 50,
                    min_tail: int = 10) -> WeightSpectrum:
    """ESD and power-law tail exponent alpha for each weight parameter with ndim >= 2.

    Args:
        model: any module; its parameters are read (float64 copies), never modified.
        min_eigenvalues: layers with fewer eigenvalues (min(out, in)) are
            reported with fitted=False instead of a meaningless alpha.
        min_tail: smallest tail size considered by the fit.

    Algorithm:
        Singular values of W (out, in) by LAPACK in float64, squared; then
        `fit_power_law`. Cost O(out * in * min(out, in)) + O(E^2) per layer.

    Source:
        Martin & Mahoney (2021) JMLR 22(165) (ESD of W^T W, alpha as a quality
        metric); Clauset, Shalizi & Newman (2009) for the fit.

    Failure modes:
        alpha on small layers is noise (hence min_eigenvalues). Alpha is
        scale-invariant, so layers with different normalizations compare fine,
        but the ESD values themselves are in raw parameter units (no 1/N).
    """
    layers = {}
    for name, p in model.named_parameters():
        if p.ndim < 2:
            continue
        w = p.detach().to(torch.float64).reshape(p.shape[0], -1)
        eig = torch.linalg.svdvals(w).pow(2)
        if len(eig) < max(min_eigenvalues, min_tail):
            layers[name] = LayerSpectrum(eig, float("nan"), float("nan"), float("nan"), float("nan"), 0,
                                         False, f"{len(eig)} eigenvalues < min_eigenvalues={min_eigenvalues}")
            continue
        alpha, xmin, d, nt = fit_power_law(eig.numpy(), min_tail=min_tail)
        layers[name] = LayerSpectrum(eig, alpha, (alpha - 1) / np.sqrt(nt), xmin, d, nt, True, "")
    return WeightSpectrum(layers)
