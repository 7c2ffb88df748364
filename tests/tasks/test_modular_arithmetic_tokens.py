"""modular_arithmetic_tokens: answers recomputed from the input tokens for every operation; only the
answer is scored; every equation appears once; the split is seeded."""

import pytest
import torch

from lmech.tasks import IGNORE_INDEX, make_task
from lmech.tasks.modular_arithmetic_tokens import ModularArithmeticTokensSpec

P = 7


def _expected(a: torch.Tensor, b: torch.Tensor, op: str) -> torch.Tensor:
    """c by brute force: for '/', the unique c with c * b = a mod p."""
    if op == "+":
        return (a + b) % P
    if op == "-":
        return (a - b) % P
    if op == "*":
        return (a * b) % P
    table = (torch.arange(P).unsqueeze(1) * torch.arange(P)) % P  # table[c, b] = c * b
    return torch.stack([(table[:, int(bi)] == int(ai)).nonzero()[0, 0] for ai, bi in zip(a, b)])


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_answers_match_the_inputs(op):
    task = make_task(ModularArithmeticTokensSpec(modulus=P, operation=op, train_fraction=0.5), seed=2)
    count = P * (P - 1) if op == "/" else P * P
    assert len(task.x_train) + len(task.x_test) == count
    assert task.x_train.dtype == torch.int64 and task.y_train.dtype == torch.int64
    assert task.x_train.shape[1] == 4 and task.y_train.shape == task.x_train.shape
    assert task.vocab_size == task.output_dim == P + 2 and task.loss == "cross_entropy"
    for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
        assert torch.equal(x[:, 1], torch.full((len(x),), P)) and torch.equal(x[:, 3], torch.full((len(x),), P + 1))
        assert torch.equal(y[:, :3], torch.full((len(x), 3), IGNORE_INDEX))  # only the answer is a target
        assert torch.equal(y[:, 3], _expected(x[:, 0], x[:, 2], op))
    pairs = torch.cat([task.x_train[:, [0, 2]], task.x_test[:, [0, 2]]])
    assert len({tuple(p.tolist()) for p in pairs}) == count  # every equation exactly once: the split is disjoint
    assert torch.equal(task.extras["train_pairs"], task.x_train[:, [0, 2]])


def test_seeded_split():
    spec = ModularArithmeticTokensSpec(modulus=11, operation="-")
    assert torch.equal(make_task(spec, 0).x_train, make_task(spec, 0).x_train)
    assert not torch.equal(make_task(spec, 0).x_train, make_task(spec, 1).x_train)


def test_division_needs_a_prime():
    with pytest.raises(ValueError, match="prime"):
        ModularArithmeticTokensSpec(modulus=8, operation="/")
    ModularArithmeticTokensSpec(modulus=8, operation="*")  # fine without inverses


def test_the_brute_force_check_can_fail():
    """Negative control: the answers of '-' are not those of '+' (the check above sees the operation)."""
    task = make_task(ModularArithmeticTokensSpec(modulus=P, operation="-"), seed=0)
    assert not torch.equal(task.y_train[:, 3], _expected(task.x_train[:, 0], task.x_train[:, 2], "+"))
