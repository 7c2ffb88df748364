"""kernel_regression: kernel formula vs explicit GD on a linear model in float64."""

import numpy as np
import pytest
import torch

from lmech.errors import InputError
from lmech.theory.kernel_regression import KernelPrediction, kernel_regression_predictions

N, M, C = 12, 5, 3


def _problem(n_features, seed=0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(N, n_features, generator=g, dtype=torch.float64)
    phi_test = torch.randn(M, n_features, generator=g, dtype=torch.float64)
    f0 = torch.randn(N, C, generator=g, dtype=torch.float64)
    f0_test = torch.randn(M, C, generator=g, dtype=torch.float64)
    y = torch.randn(N, C, generator=g, dtype=torch.float64)
    return phi, phi_test, f0, f0_test, y


def _train_linear_model(phi, phi_test, f0, f0_test, y, lr, record):
    """GD on f(x) = f0(x) + phi(x)^T W, loss 1/(2N) sum_n sum_c (f - y)^2, torch autograd."""
    w = torch.zeros(phi.shape[1], C, dtype=torch.float64, requires_grad=True)
    train, test = [], []
    for step in range(max(record) + 1):
        if step in record:
            with torch.no_grad():
                train.append((f0 + phi @ w).numpy().copy())
                test.append((f0_test + phi_test @ w).numpy().copy())
        loss = 0.5 * ((f0 + phi @ w - y) ** 2).sum(dim=1).mean()
        (grad,) = torch.autograd.grad(loss, (w,))
        with torch.no_grad():
            w -= lr * grad
    return np.stack(train), np.stack(test)


@pytest.mark.parametrize("n_features", [30, 7])  # nonsingular K (P > N) and singular K (P < N)
def test_matches_gd_on_linear_model(n_features):
    phi, phi_test, f0, f0_test, y = _problem(n_features)
    k = (phi @ phi.T).numpy()
    lr = 0.5 * N / np.linalg.eigvalsh(k)[-1]  # stable: lr lambda_max / N = 0.5
    steps = [0, 1, 7, 50, 300]
    pred = kernel_regression_predictions(k, (phi_test @ phi.T).numpy(), f0.numpy(),
                                         f0_test.numpy(), y.numpy(), lr, steps)
    assert isinstance(pred, KernelPrediction)
    assert pred.train.shape == (5, N, C) and pred.test.shape == (5, M, C)
    train, test = _train_linear_model(phi, phi_test, f0, f0_test, y, lr, steps)
    # Exact identity in float64; 300 steps of roundoff accumulate to ~1e-13.
    np.testing.assert_allclose(pred.train, train, rtol=0, atol=1e-10)
    np.testing.assert_allclose(pred.test, test, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_features", [30, 7])
def test_infinite_time_is_min_norm_interpolant(n_features):
    phi, phi_test, f0, f0_test, y = _problem(n_features, seed=1)
    pred = kernel_regression_predictions((phi @ phi.T).numpy(), (phi_test @ phi.T).numpy(),
                                         f0.numpy(), f0_test.numpy(), y.numpy(), 0.1, np.inf)
    # Independent: GD from W = 0 converges to the min-norm least-squares W = phi^+ (y - f0).
    w = np.linalg.lstsq(phi.numpy(), (y - f0).numpy(), rcond=None)[0]
    # pinv/eigh conditioning for these random 12x7 / 12x30 designs: ~1e-13.
    np.testing.assert_allclose(pred.test[0], f0_test.numpy() + phi_test.numpy() @ w, atol=1e-10)
    np.testing.assert_allclose(pred.train[0], f0.numpy() + phi.numpy() @ w, atol=1e-10)


def test_negative_control_wrong_loss_normalisation():
    # If the loss were a sum over examples (no 1/N), the prediction at the same lr would be off.
    phi, phi_test, f0, f0_test, y = _problem(30)
    k = (phi @ phi.T).numpy()
    lr = 0.5 * N / np.linalg.eigvalsh(k)[-1]
    _, test = _train_linear_model(phi, phi_test, f0, f0_test, y, lr, [20])
    wrong = kernel_regression_predictions(k, (phi_test @ phi.T).numpy(), f0.numpy(),
                                          f0_test.numpy(), y.numpy(), lr / N, [20])
    assert np.max(np.abs(wrong.test - test)) > 1e-2


def test_rejects_bad_input():
    phi, phi_test, f0, f0_test, y = _problem(30)
    k = (phi @ phi.T).numpy()
    with pytest.raises(InputError):
        kernel_regression_predictions(k[:, :5], k[:M], f0.numpy(), f0_test.numpy(), y.numpy(), 0.1, 1)
    with pytest.raises(InputError):  # divergent lr has no t -> inf limit
        kernel_regression_predictions(k, (phi_test @ phi.T).numpy(), f0.numpy(), f0_test.numpy(),
                                      y.numpy(), 10 * N / np.linalg.eigvalsh(k)[-1], np.inf)
