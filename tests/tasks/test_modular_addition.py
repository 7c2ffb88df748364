"""modular_addition: labels are (a + b) mod p of the one-hot-decoded inputs; the split is seeded and disjoint."""

import torch

from lmech.tasks import make_task
from lmech.tasks.modular_addition import ModularAdditionSpec


def test_labels_inputs_and_split():
    spec = ModularAdditionSpec(modulus=7, train_fraction=0.3)
    task = make_task(spec, seed=3)
    assert task.x_train.shape == (15, 14) and task.x_test.shape == (34, 14)  # round(0.3 * 49) = 15
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        a, b = x[:, :7].argmax(1), x[:, 7:].argmax(1)
        assert torch.equal(x.sum(1), torch.full((len(x),), 2.0))
        assert torch.equal(y, (a + b) % 7)
    pairs = torch.cat([task.extras["train_pairs"], task.extras["test_pairs"]])
    assert len({tuple(p.tolist()) for p in pairs}) == 49  # every pair exactly once
    assert task.loss == "cross_entropy" and task.output_dim == 7


def test_seeded_split():
    spec = ModularAdditionSpec(modulus=11)
    assert torch.equal(make_task(spec, 0).x_train, make_task(spec, 0).x_train)
    assert not torch.equal(make_task(spec, 0).x_train, make_task(spec, 1).x_train)


def test_one_hot_targets_for_mse():
    task = make_task(ModularAdditionSpec(modulus=5, targets="one_hot"), seed=0)
    assert task.loss == "half_sse" and task.y_train.shape == (len(task.x_train), 5)
    a, b = task.x_train[:, :5].argmax(1), task.x_train[:, 5:].argmax(1)
    assert torch.equal(task.y_train.argmax(1), (a + b) % 5)
