"""random_features: predicted exponents vs simulated random-feature ridge regression."""

import numpy as np
import pytest

from lmech.errors import InputError
from lmech.theory.random_features import random_feature_exponents

M = 1000  # latent dimension (>= 16x the largest bottleneck size)
SIZES = np.array([8, 16, 32, 64])
TOL = 0.1  # the scaling-law phenomenon's verdict tolerance; measured errors are <= 0.06


def _teacher_averaged_loss(n_feat, n_data, alpha, seed, ridge=1e-8):
    """Test loss of RF ridge regression, averaged exactly over the isotropic teacher w ~ N(0, I_M).

    With v = R w (R linear in the data), the error is (U^T R - I) w, so
    E_w[loss] = tr(Q^T Lambda Q) with Q = U^T R - I: no teacher sampling noise.
    """
    rng = np.random.default_rng(seed)
    lam = np.arange(1, M + 1) ** -(1.0 + alpha)
    u = rng.standard_normal((n_feat, M)) / np.sqrt(M)
    z = rng.standard_normal((n_data, M)) * np.sqrt(lam)
    f = z @ u.T  # (P, N) features
    if n_feat <= n_data:
        r = np.linalg.solve(f.T @ f + ridge * n_data * np.eye(n_feat), f.T @ z)
    else:
        r = f.T @ np.linalg.solve(f @ f.T + ridge * n_data * np.eye(n_data), z)
    q = u.T @ r
    q[np.diag_indices(M)] -= 1.0
    return float(np.sum(lam[:, None] * q * q))


def _fitted_exponent(alpha, mode):
    losses = []
    for s in SIZES:
        n_feat, n_data = (s, 2048) if mode == "model" else (1024, s)  # other size >= 16x bottleneck
        losses.append(np.mean([_teacher_averaged_loss(n_feat, n_data, alpha, seed) for seed in range(2)]))
    return -np.polyfit(np.log(SIZES), np.log(losses), 1)[0]


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("mode", ["model", "data"])
def test_fitted_exponent_matches_prediction(alpha, mode):
    pred = getattr(random_feature_exponents(alpha), mode)
    fitted = _fitted_exponent(alpha, mode)
    assert abs(fitted - pred) < TOL, (fitted, pred)
    # Negative control on the same simulation: reading the spectrum as k^-alpha (forgetting
    # the +1, i.e. predicting alpha - 1) must fail the same tolerance.
    assert abs(fitted - (alpha - 1.0)) > TOL


def test_rejects_bad_alpha():
    with pytest.raises(InputError):
        random_feature_exponents(0.0)
