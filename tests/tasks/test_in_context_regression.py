"""in_context_regression: the token layout carries x_t and y_{t-1}; targets are w . x_t; the Bayes
baseline agrees with a brute-force solve per sequence and, without noise, with max(D - t, 0)."""

import torch

from lmech.tasks import make_task
from lmech.tasks.in_context_regression import InContextRegressionSpec, bayes_predictions


def test_layout_and_targets():
    spec = InContextRegressionSpec(input_dim=3, n_points=10, n_train=50, n_test=20)
    task = make_task(spec, seed=0)
    assert task.x_train.shape == (50, 10, 4) and task.y_train.shape == (50, 10, 1)
    assert task.x_test.shape == (20, 10, 4) and task.x_train.dtype == task.y_train.dtype == torch.float32
    assert task.loss == "mse" and task.output_dim == 1 and task.vocab_size is None and task.input_shape == (10, 4)
    for x, y, w in ((task.x_train, task.y_train, task.extras["train_weights"]),
                    (task.x_test, task.y_test, task.extras["test_weights"])):
        y = y.squeeze(-1)
        recomputed = (x[..., :3].double() @ w.unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(recomputed, y.double(), atol=1e-5, rtol=1e-5)  # float32 storage
        assert torch.equal(x[:, 0, 3], torch.zeros(len(x)))  # no y before the first point
        assert torch.equal(x[:, 1:, 3], y[:, :-1])  # token t carries y_{t-1}, never y_t
    # negative control: another sequence's w does not fit these points
    wrong = (task.x_train[..., :3].double() @ task.extras["train_weights"].roll(1, 0).unsqueeze(-1)).squeeze(-1)
    assert not torch.allclose(wrong, task.y_train.squeeze(-1).double(), atol=1e-2)


def test_bayes_predictions_match_a_brute_force_solve():
    g = torch.Generator().manual_seed(0)
    n, t, d = 6, 9, 4
    x = torch.randn(n, t, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, t, generator=g, dtype=torch.float64)
    for noise in (0.0, 0.7):
        fast = bayes_predictions(x, y, noise)
        for a in range(n):
            for i in range(t):
                xs, ys = x[a, :i], y[a, :i]
                if noise == 0:  # min-norm least squares
                    w = torch.linalg.pinv(xs) @ ys if i else torch.zeros(d, dtype=torch.float64)
                else:  # posterior mean under w ~ N(0, I)
                    w = torch.linalg.solve(xs.T @ xs + noise**2 * torch.eye(d, dtype=torch.float64), xs.T @ ys)
                assert abs(float(fast[a, i] - x[a, i] @ w)) < 1e-9  # float64; t = D is the worst-conditioned case


def test_noiseless_bayes_error_is_the_unexplained_dimension():
    spec = InContextRegressionSpec(input_dim=6, n_points=12, n_test=2000, n_train=1)
    bayes = make_task(spec, seed=1).extras["test_bayes_mse"]
    assert bayes.shape == (12,) and bayes.dtype == torch.float64
    for t in range(12):
        r = max(6 - t, 0)
        if r == 0:
            assert float(bayes[t]) < 1e-8  # D noiseless points determine w; float64 rounding only
            continue
        # error = ||P w||^2 z^2 with ||P w||^2 ~ chi2_r and z ~ N(0, 1): variance 3 r (r + 2) - r^2
        standard_error = ((3 * r * (r + 2) - r * r) / spec.n_test) ** 0.5
        assert abs(float(bayes[t]) - r) < 4 * standard_error  # 6 positions: a false alarm has p ~ 4e-4
    # negative control: with noise the floor stays at about sigma^2 after D points, far above 0
    noisy = make_task(spec.model_copy(update={"noise": 0.5}), seed=1).extras["test_bayes_mse"]
    assert float(noisy[6:].min()) > 0.2


def test_seeding():
    spec = InContextRegressionSpec(n_train=10, n_test=5)
    assert torch.equal(make_task(spec, 0).x_train, make_task(spec, 0).x_train)
    assert not torch.equal(make_task(spec, 0).x_train, make_task(spec, 1).x_train)
    assert not torch.equal(make_task(spec, 0).x_train[:5], make_task(spec, 0).x_test)
