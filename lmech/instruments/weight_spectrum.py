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

from lmech.instruments._json import JsonResult
from lmech.instruments._state import measures_model

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
        (alpha, xmin, ks_distance, n_tail); (NaN, NaN, inf, 0) if every
        candidate's tail is a single repeated value.

    Algorithm:
        The candidates are the distinct sample values x_(j) (first occurrence
        in sorted order) leaving n_j = E - j >= min_tail samples. For each, alpha_j =
        1 + n_j [sum_{i>=j} ln(x_i / x_(j))]^-1 (eq. 3.1), from one suffix cumulative
        sum of ln x, and D_j = max_{i>=j} |P_j(x_i) - S_j(x_i^-)| with the fitted
        CDF P_j(x) = 1 - (x / x_(j))^(1 - alpha_j) and S_j(x_i^-) = #{tail
        samples < x_i} / n_j (that is (i - j) / n_j for distinct values). The xmin
        with the smallest D_j is kept (section 3.3), the smallest one on ties as in plfit.m.
        The D_j are vectorized over blocks of candidates. Cost: about E^2 / 2
        exponentials (timing: bench/NOTES.md, `weight_spectrum.fit_power_law`). The max over i of a function that is
        nonlinear in alpha_j does not reduce to cumulative sums, so the cost stays O(E^2).

    KS convention:
        S is evaluated at the left limit of each step only, i/n_j for i = 0..n_j - 1,
        as in Clauset's reference code plfit.m (`cx = (0:n-1)'./n`), the `powerlaw`
        package (`statistics.cdf`, `arange(n)/n`, kept to match plfit: jeffalstott/powerlaw
        PR #10, issue #111), poweRlaw and WeightWatcher, so alpha and xmin match theirs.
        The exact supremum of eq. 3.9 also checks the right limits (i+1)/n_j; it
        exceeds this D_j by at most 1/n_j (distinct values) and can pick another xmin.
        Those tools consider tails down to 2 samples; here min_tail applies.

    Source:
        Clauset, Shalizi & Newman (2009) "Power-law distributions in empirical
        data", SIAM Review 51(4), eq. 3.1 (MLE), eq. 3.2 (standard error),
        section 3.3 (xmin by KS); Alstott, Bullmore & Plenz (2014) `powerlaw`,
        PLoS ONE 9(1) e85777; Martin & Mahoney (2021) "Implicit
        self-regularization in deep neural networks", JMLR 22(165).

    Failure modes:
        Not a goodness-of-fit test: a small D does not prove a power law. Small
        tails give noisy alphas (standard error (alpha - 1) / sqrt(n_tail)); the
        last min_tail - 1 samples are never candidates. When two distant candidates
        have nearly equal D_j, a rounding-level change in the samples can move
        xmin, and alpha with it, by a large amount.
    """
    x = np.asarray(x, dtype=np.float64)
    x = np.sort(x[x > 0])
    n = len(x)
    if n < min_tail or min_tail < 2:
        raise ValueError(f"need >= min_tail={min_tail} >= 2 positive samples, got {n}")
    logs = np.log(x)
    suffix = np.cumsum(logs[::-1])[::-1]  # suffix[j] = sum_{i >= j} ln x_i
    first = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    j = first[first <= n - min_tail]
    n_tail = n - j
    denom = suffix[j] - n_tail * logs[j]
    keep = denom > 0  # False only when the whole tail is one repeated value
    j, n_tail = j[keep], n_tail[keep]
    if len(j) == 0:
        return (np.nan, np.nan, np.inf, 0)
    alpha = 1.0 + n_tail / denom[keep]
    d = _ks_distances(logs, np.searchsorted(x, x, side="left"), j, alpha)
    k = int(np.argmin(d))
    return (float(alpha[k]), float(x[j[k]]), float(d[k]), int(n_tail[k]))


def _ks_distances(logs: np.ndarray, below: np.ndarray, j: np.ndarray, alpha: np.ndarray,
                  block_entries: int = 1 << 16) -> np.ndarray:
    """D_j for each candidate tail start j (ascending), see `fit_power_law`; below[i] = #{x < x_i}.

    Blocks of candidates span about block_entries samples (512 KiB of float64, cache-sized).
    """
    n = len(logs)
    d = np.empty(len(j))
    start = 0
    while start < len(j):
        j0 = j[start]
        stop = min(len(j), start + max(1, block_entries // (n - j0)))
        jb = j[start:stop, None]
        # Columns i < j give |0 - 0|: the log ratio and the count are clamped at 0.
        t = logs[None, j0:] - logs[jb]
        np.maximum(t, 0.0, out=t)
        t *= 1.0 - alpha[start:stop, None]
        np.expm1(t, out=t)  # -P_j(x_i)
        s = below[None, j0:] - jb
        np.maximum(s, 0, out=s)
        t += s / (n - jb)  # S_j(x_i^-) - P_j(x_i)
        np.abs(t, out=t)
        d[start:stop] = t.max(axis=1)
        start = stop
    return d


@measures_model
def weight_spectrum(model: torch.nn.Module, *, min_eigenvalues: int = 50,
                    min_tail: int = 10) -> WeightSpectrum:
    """ESD and power-law tail exponent alpha for each weight parameter with ndim >= 2.

    Args:
        model: any module; its parameters are read (float64 copies), never modified.
        min_eigenvalues: layers with fewer eigenvalues (min(out, in)) are
            reported with fitted=False instead of a meaningless alpha.
        min_tail: smallest tail size considered by the fit.

    Algorithm:
        Eigenvalues of the smaller Gram matrix, W^T W (in, in) if out >= in else
        W W^T (out, out), in float64 by LAPACK syevd (the nonzero spectrum of W^T W either
        way; the few negative values that rounding can produce are set to 0); then `fit_power_law`.
        Cost per layer: out * in * E multiply-adds for the Gram, about (4/3) E^3 for the
        eigenvalues and O(E^2) for the fit, where E = min(out, in). The Gram and its eigenvalues
        measured faster than an SVD of W (bench/NOTES.md, `weight_spectrum.weight_spectrum`).

    Source:
        Martin & Mahoney (2021) JMLR 22(165) (ESD of W^T W, alpha as a quality
        metric); Clauset, Shalizi & Newman (2009) for the fit.

    Failure modes:
        alpha on small layers is noise (hence min_eigenvalues). Alpha is
        scale-invariant, so layers with different normalizations compare fine,
        but the ESD values themselves are in raw parameter units (no 1/N).
        The Gram matrix squares W's condition number: eigenvalues carry an absolute
        error of order 1e-16 * lambda_max (times a slowly growing factor in E), whereas squared
        singular values from an SVD keep their relative accuracy. Eigenvalues below
        about 1e-12 lambda_max are therefore not resolved; this matters only when
        such values enter the fit.
    """
    layers = {}
    for name, p in model.named_parameters():
        if p.ndim < 2:
            continue
        w = p.detach().to(torch.float64).reshape(p.shape[0], -1)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        eig = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0)
        if len(eig) < max(min_eigenvalues, min_tail):
            layers[name] = LayerSpectrum(eig, float("nan"), float("nan"), float("nan"), float("nan"), 0,
                                         False, f"{len(eig)} eigenvalues < min_eigenvalues={min_eigenvalues}")
            continue
        alpha, xmin, d, nt = fit_power_law(eig.numpy(), min_tail=min_tail)
        layers[name] = LayerSpectrum(eig, alpha, (alpha - 1) / np.sqrt(nt), xmin, d, nt, True, "")
    return WeightSpectrum(layers)
