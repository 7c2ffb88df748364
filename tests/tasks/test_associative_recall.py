"""associative_recall: every target is the value paired with its query key earlier in the same
sequence (looked up one sequence at a time); layout, validation, seeding."""

import pytest
import torch

from lmech.tasks import IGNORE_INDEX, make_task
from lmech.tasks.associative_recall import AssociativeRecallSpec


def _check_answers(x: torch.Tensor, y: torch.Tensor, d: int, q: int) -> None:
    for xs, ys in zip(x.tolist(), y.tolist()):
        pairs = dict(zip(xs[0:2 * d:2], xs[1:2 * d:2]))
        assert len(pairs) == d and len(set(pairs.values())) == d  # distinct keys and values
        scored = [i for i, target in enumerate(ys) if target != IGNORE_INDEX]
        assert len(scored) == q and min(scored) >= 2 * d
        assert len({xs[i] for i in scored}) == q  # distinct queried keys
        for i in scored:
            assert ys[i] == pairs[xs[i]]
        assert all(xs[i] == 0 for i in range(2 * d, len(xs)) if i not in scored)  # blanks elsewhere


def test_targets_are_the_recalled_values():
    spec = AssociativeRecallSpec(vocab_size=20, n_pairs=4, n_queries=3, seq_len=16, n_train=200, n_test=50)
    task = make_task(spec, seed=0)
    assert task.x_train.shape == task.y_train.shape == (200, 16) and task.x_test.shape == (50, 16)
    assert task.x_train.dtype == task.y_train.dtype == torch.int64
    assert task.vocab_size == task.output_dim == 20 and task.loss == "cross_entropy"
    assert 1 <= int(task.x_train[:, 0:8:2].min()) and int(task.x_train[:, 0:8:2].max()) < 10  # keys
    assert 10 <= int(task.x_train[:, 1:8:2].min()) and int(task.x_train[:, 1:8:2].max()) < 20  # values
    _check_answers(task.x_train, task.y_train, 4, 3)
    _check_answers(task.x_test, task.y_test, 4, 3)
    # negative control: answers rolled by one sequence break the lookup
    with pytest.raises(AssertionError):
        _check_answers(task.x_train, task.y_train.roll(1, 0), 4, 3)


def test_defaults_and_disjoint_draws():
    task = make_task(AssociativeRecallSpec(), seed=0)
    _check_answers(task.x_train[:64], task.y_train[:64], 8, 8)
    train = {tuple(row) for row in task.x_train.tolist()}
    assert not any(tuple(row) in train for row in task.x_test.tolist())  # independent draws; a repeat has p < 1e-15


def test_seeding():
    spec = AssociativeRecallSpec(n_train=20, n_test=5)
    assert torch.equal(make_task(spec, 1).x_train, make_task(spec, 1).x_train)
    assert not torch.equal(make_task(spec, 1).x_train, make_task(spec, 2).x_train)


@pytest.mark.parametrize("fields, match", [({"n_pairs": 10, "vocab_size": 16}, "vocab_size"),
                                           ({"n_queries": 9}, "n_pairs"),
                                           ({"seq_len": 20}, "seq_len"), ({"seq_len": 63}, "seq_len")])
def test_validation(fields, match):
    with pytest.raises(ValueError, match=match):
        AssociativeRecallSpec(**fields)
