"""power_law_map: shapes, the target's singular values, and the population-loss formula by brute force."""

import torch

from lmech.tasks import make_task
from lmech.tasks.power_law_map import PowerLawMapSpec


def test_shapes_and_singular_values():
    spec = PowerLawMapSpec(n_train=100, n_test=50, input_dim=12, output_dim=8, decay=0.7, noise=0.2)
    task = make_task(spec, seed=3)
    assert task.x_train.shape == (100, 12) and task.y_train.shape == (100, 8) and task.x_test.shape == (50, 12)
    s = torch.linalg.svdvals(task.extras["target_map"])
    assert torch.allclose(s, torch.arange(1, 9, dtype=torch.float64) ** -0.7, atol=1e-10)
    assert torch.equal(make_task(spec, seed=3).y_test, task.y_test)
    assert not torch.equal(make_task(spec, seed=4).y_test, task.y_test)


def test_population_mse_is_frobenius_distance_plus_noise():
    """Empirical 0.5 mean sum (W x - y)^2 on 200k draws vs 0.5 (||W - M||_F^2 + C noise^2), 1% tolerance."""
    spec = PowerLawMapSpec(n_train=1, n_test=200_000, input_dim=6, output_dim=4, decay=1.0, noise=0.3)
    task = make_task(spec, seed=0)
    w = torch.zeros(4, 6, dtype=torch.float64)  # the zero predictor and a rank-1 truncation
    target = task.extras["target_map"]
    u, s, vh = torch.linalg.svd(target)
    for predictor in (w, s[0] * torch.outer(u[:, 0], vh[0])):
        empirical = 0.5 * ((task.x_test.double() @ predictor.T - task.y_test.double()) ** 2).sum(1).mean()
        exact = 0.5 * (torch.linalg.norm(predictor - target) ** 2 + 4 * 0.3**2)
        assert abs(empirical / exact - 1) < 0.01
