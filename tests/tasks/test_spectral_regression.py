import numpy as np
import pytest
import torch

from lmech.tasks import make_task
from lmech.tasks.spectral_regression import SpectralRegressionSpec
from lmech.theory.benign_overfitting import exponential_plus_isotropic_spectrum


def test_spectrum_covariance_and_labels():
    spec = SpectralRegressionSpec(n_train=20000, n_test=5, input_dim=6, decay=2.0, tail_trace=0.6, noise=0.5)
    task = make_task(spec, seed=0)
    lam = task.extras["spectrum"].numpy()
    np.testing.assert_allclose(lam, exponential_plus_isotropic_spectrum(6, 0.6, 2.0), rtol=1e-12)
    x = task.x_train.double().numpy()
    cov = x.T @ x / len(x)
    # 20000 rows: each entry's standard error is about lambda / 70; 5% of lambda_1 covers it
    np.testing.assert_allclose(cov, np.diag(lam), atol=0.05)
    resid = task.y_train[:, 0].double().numpy() - x @ task.extras["beta"].numpy()
    assert resid.std() == pytest.approx(0.5, rel=0.03)
    assert task.extras["beta"][0] == 1.0 and float(task.extras["beta"][1:].abs().sum()) == 0.0


def test_seeds_differ_and_repeat():
    spec = SpectralRegressionSpec(n_train=4, n_test=2, input_dim=8)
    assert torch.equal(make_task(spec, 1).x_train, make_task(spec, 1).x_train)
    assert not torch.equal(make_task(spec, 1).x_train, make_task(spec, 2).x_train)
