"""binary_teacher: shapes, labels from the teacher, the random-label switch, seed determinism."""

import torch

from lmech.tasks import make_task
from lmech.tasks.binary_teacher import BinaryTeacherSpec


def test_labels_are_the_teacher_sign_and_random_labels_keep_the_inputs():
    spec = BinaryTeacherSpec(n_train=2000, n_test=500, input_dim=5, teacher_width=3)
    task = make_task(spec, 0)
    assert task.x_train.shape == (2000, 5) and task.y_train.shape == (2000,) and task.y_train.dtype == torch.int64
    w, a = task.extras["teacher_W"], task.extras["teacher_a"]
    assert torch.equal(task.y_test, (torch.tanh(task.x_test @ w.T / 5**0.5) @ a > 0).long())
    noisy = make_task(spec.model_copy(update={"random_labels": True}), 0)
    assert torch.equal(noisy.x_train, task.x_train)
    agree = float((noisy.y_train == task.y_train).double().mean())
    assert abs(agree - 0.5) < 0.05  # coins independent of the teacher (sd 0.011 at n = 2000)
    assert torch.equal(make_task(spec, 0).x_train, task.x_train)
    assert not torch.equal(make_task(spec, 1).x_train, task.x_train)
