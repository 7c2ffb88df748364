"""Loss exponents of linear random-feature regression on power-law data (Maloney, Roberts & Sully 2022).

One job: the predicted exponents of test loss in the number of features N
(model size) and of training examples P (data size) in the ridgeless /
small-ridge limit.  It ignores the prefactors, the double-descent peak at
``N = P``, training dynamics (compute scaling) and nonlinear features.

Convention (exactly the setting of the source):

* latent data ``x in R^M``, ``x ~ N(0, Lambda)``, ``lambda_k = k^{-(1+alpha)}``,
  ``k = 1..M`` (``alpha > 0``);
* teacher ``y = w . x`` with isotropic latent weights ``w ~ N(0, I_M)``, so the
  target power per mode is ``E[w_k^2] lambda_k ∝ k^{-(1+alpha)}`` (the same
  exponent as the spectrum);
* features ``phi = U x`` with ``U (N, M)`` i.i.d. Gaussian; ridge regression
  of ``y`` on ``phi`` with a vanishing ridge; test loss ``E[(y_hat - y)^2]``.

Then ``L ∝ N^{-alpha}`` when ``N << P`` (model-limited) and
``L ∝ P^{-alpha}`` when ``P << N`` (data-limited).

Asymptotic regime (where a fitted exponent is within about 0.06 of the
prediction, checked by ``tests/theory/test_random_features.py`` for
``alpha in {0.5, 1}``): the bottleneck size in ``[8, 64]``, the other size at
least 16x larger, and the latent dimension ``M >= 16 x`` the bottleneck
(``M = 1000`` at bottleneck 64). Closer to ``N = P`` the ridgeless peak
bends the curve; as the bottleneck approaches ``M`` the truncated spectrum
makes the decay faster than ``alpha``; below ~8 the prefactor's
finite-size corrections dominate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmech.errors import InputError

__all__ = ["RandomFeatureExponents", "random_feature_exponents"]


@dataclass(frozen=True)
class RandomFeatureExponents:
    """Predicted ``L ∝ N^{-model}`` (``N << P``) and ``L ∝ P^{-data}`` (``P << N``)."""

    model: float
    data: float


def random_feature_exponents(alpha: float) -> RandomFeatureExponents:
    """Exponents of test loss in model size and data size for spectrum ``k^{-(1+alpha)}``.

    Args:
        alpha: spectral exponent ``> 0``: eigenvalues ``lambda_k ∝ k^{-(1+alpha)}``
            and target power ``E[w_k^2] lambda_k ∝ k^{-(1+alpha)}`` (isotropic
            latent teacher; see the module docstring).

    Returns:
        ``RandomFeatureExponents(model=alpha, data=alpha)``.

    Algorithm:
        Closed form. Heuristically, the N features (or P examples) resolve the
        top ~N (or ~P) latent modes; the loss is the unresolved tail of the
        target power, ``sum_{k > N} k^{-(1+alpha)} ∝ N^{-alpha}``. O(1).

    Source:
        Maloney, Roberts & Sully 2022, "A solvable model of neural scaling
        laws" (arXiv:2210.16859): the generalized random-feature model with
        power-law latent spectrum ``lambda_i ∝ i^{-(1+alpha)}``; headline
        result ``L ∝ N^{-alpha}`` for ``N < P`` and ``L ∝ P^{-alpha}`` for
        ``P < N`` in the ridgeless limit (Sections 1 and 4).

    Failure modes:
        Only for the isotropic-teacher convention above: a target whose power
        decays with a different exponent changes both exponents (see
        Bordelon, Atanasov & Pehlevan 2024 for the general source/capacity
        case). Finite sizes bias fitted exponents (see the regime in the
        module docstring); a visible ridge flattens the curve at
        ``lambda_k < ridge``.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise InputError(f"alpha must be finite and > 0 (spectrum k^-(1+alpha)), got {alpha}")
    return RandomFeatureExponents(model=float(alpha), data=float(alpha))
