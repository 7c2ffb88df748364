"""power_law_features: the two sampling branches against their closed-form laws."""

import torch

from lmech.tasks import make_task
from lmech.tasks.power_law_features import PowerLawFeaturesSpec


def _joint_cov(extras):
    readout = torch.cat([extras["projection"], extras["teacher"][None, :]])  # (N+1, M)
    return (readout * extras["spectrum"]) @ readout.T


def _relative_frobenius(a, b):
    return float((a - b).norm() / b.norm())


def test_joint_branch_matches_the_projected_latent_covariance():
    # n_train + n_test > N + 1: rows drawn from the joint Gaussian law of (phi, y)
    spec = PowerLawFeaturesSpec(n_train=40000, n_test=8, n_features=4, latent_dim=20, alpha=1.0)
    task = make_task(spec, 3)
    rows = torch.cat([task.extras["features_train"], task.extras["targets_train"][:, None]], 1)
    empirical = rows.T @ rows / rows.shape[0]
    expected = _joint_cov(task.extras)
    # Monte Carlo: relative s.e. of a second moment ~ sqrt(2 / 40000) = 0.007; 0.03 is ~4 s.e.
    assert _relative_frobenius(empirical, expected) < 0.03
    # negative control: the law of a different spectrum exponent is far outside that band
    other = make_task(spec.model_copy(update={"alpha": 0.2, "n_train": 8}), 3).extras
    assert _relative_frobenius(empirical, _joint_cov(other)) > 0.1


def test_latent_branch_is_a_projection_of_the_teacher_inputs():
    # n_train + n_test <= N + 1 with N >= M: U has full column rank, so the latent x = U^+ phi is
    # recovered exactly and y must equal w . x (float64 identity, 1e-9)
    spec = PowerLawFeaturesSpec(n_train=20, n_test=5, n_features=30, latent_dim=20, alpha=0.5)
    ex = make_task(spec, 1).extras
    latent = torch.linalg.lstsq(ex["projection"], ex["features_train"].T).solution.T  # (P, M)
    assert torch.allclose(latent @ ex["teacher"], ex["targets_train"], atol=1e-9)
    assert not torch.allclose(latent @ ex["teacher"].flip(0), ex["targets_train"], atol=1e-3)


def test_shapes_dtypes_and_determinism():
    spec = PowerLawFeaturesSpec(n_train=12, n_test=5, n_features=7, latent_dim=30)
    a, b = make_task(spec, 0), make_task(spec, 0)
    assert a.x_train.shape == (12, 7) and a.y_train.shape == (12, 1) and a.x_test.shape == (5, 7)
    assert a.x_train.dtype == torch.float32 and a.extras["projection"].dtype == torch.float64
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, make_task(spec, 1).x_train)
    lam = a.extras["spectrum"]
    assert torch.allclose(lam, torch.arange(1, 31, dtype=torch.float64) ** -2.0, rtol=1e-12)
