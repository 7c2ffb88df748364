import torch

from lmech.tasks import make_task
from lmech.tasks.multi_token_lookup import MultiTokenLookupSpec


def test_targets_are_the_position_tables_of_the_inputs():
    spec = MultiTokenLookupSpec(vocab_size=7, length=5, n_train=300, n_test=50)
    task = make_task(spec, seed=3)
    tables = task.extras["tables"]
    assert tables.shape == (5, 7)
    assert all(torch.equal(torch.sort(row).values, torch.arange(7)) for row in tables)  # permutations
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape
        for t in range(5):
            assert torch.equal(y[:, t], tables[t][x[:, t]])
    assert task.loss == "cross_entropy" and task.output_dim == task.vocab_size == 7


def test_seed_fixes_the_tables():
    spec = MultiTokenLookupSpec(vocab_size=16, length=4, n_train=8, n_test=8)
    assert torch.equal(make_task(spec, 1).extras["tables"], make_task(spec, 1).extras["tables"])
    assert not torch.equal(make_task(spec, 1).extras["tables"], make_task(spec, 2).extras["tables"])
