import pytest
import torch

from lmech.tasks import make_task
from lmech.tasks.deep_linear import DeepLinearSpec
from lmech.tasks.digits import DigitsSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.tasks.teacher_student import TeacherStudentSpec

SPECS = [GaussianRegressionSpec(n_train=30, n_test=40, input_dim=7), DeepLinearSpec(),
         TeacherStudentSpec(n_train=20, n_test=30), DigitsSpec()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_shapes_and_seeding(spec):
    a, b, c = make_task(spec, 0), make_task(spec, 0), make_task(spec, 1)
    assert a.x_train.dim() == 2 and a.x_train.shape[0] == a.y_train.shape[0]
    assert a.x_test.shape[1] == a.input_dim
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    if spec.name != "digits":  # the digits split is fixed by design
        assert not torch.equal(a.x_train, c.x_train)


def test_gaussian_regression_matches_its_beta():
    task = make_task(GaussianRegressionSpec(n_train=2000, input_dim=5, noise=0.0, signal_norm=2.0), 3)
    beta = task.extras["beta"]
    assert abs(beta.norm().item() - 2.0) < 1e-5  # float32 rounding
    assert torch.allclose(task.x_train @ beta, task.y_train[:, 0], atol=1e-5)


def test_deep_linear_is_whitened_with_the_chosen_singular_values():
    spec = DeepLinearSpec(input_dim=6, output_dim=5, singular_values=(4.0, 1.0, 0.25))
    task = make_task(spec, 0)
    n = task.x_train.shape[0]
    sigma_xx = task.x_train.T.double() @ task.x_train.double() / n
    sigma_yx = task.y_train.T.double() @ task.x_train.double() / n
    assert torch.allclose(sigma_xx, torch.eye(6, dtype=torch.float64), atol=1e-5)  # float32 data
    singular = torch.linalg.svdvals(sigma_yx)[:3]
    assert torch.allclose(singular, torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64), atol=1e-5)


def test_deep_linear_rejects_too_many_modes():
    with pytest.raises(ValueError, match="singular values"):
        make_task(DeepLinearSpec(input_dim=2, output_dim=2, singular_values=(3.0, 2.0, 1.0)), 0)


def test_digits_is_standardized_and_split():
    task = make_task(DigitsSpec(), 0)
    assert task.x_train.shape[0] + task.x_test.shape[0] == 1797
    used = task.x_train.std(0) > 0
    assert torch.allclose(task.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(task.x_train.std(0, unbiased=False)[used], torch.ones(int(used.sum())), atol=1e-4)
    one_hot = make_task(DigitsSpec(targets="one_hot"), 0)
    assert one_hot.loss == "half_sse" and one_hot.y_train.shape[1] == 10
