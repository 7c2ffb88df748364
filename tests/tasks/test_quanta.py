"""quanta: labels are the parity of each example's subtask bits (recomputed from x); subtask
frequencies follow the Zipf law within a few standard errors; both layouts; seeding."""

import pytest
import torch

from lmech.tasks import IGNORE_INDEX, make_task
from lmech.tasks.quanta import QuantaSpec


def _parity(bits: torch.Tensor, subsets: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """Brute force, one example at a time."""
    return torch.tensor([int(sum(int(b[j]) for j in subsets[t])) % 2 for b, t in zip(bits, task)])


def test_bits_layout_labels_are_the_subtask_parity():
    spec = QuantaSpec(n_tasks=10, n_bits=12, k=3, n_train=400, n_test=100)
    task = make_task(spec, seed=0)
    assert task.x_train.shape == (400, 22) and task.x_train.dtype == torch.float32
    assert task.y_train.shape == (400,) and task.y_train.dtype == torch.int64
    assert task.output_dim == 2 and task.vocab_size is None and task.loss == "cross_entropy"
    subsets = task.extras["subsets"]
    assert subsets.shape == (10, 3) and all(len(set(s.tolist())) == 3 for s in subsets)
    for x, y, which in ((task.x_train, task.y_train, task.extras["train_task"]),
                        (task.x_test, task.y_test, task.extras["test_task"])):
        control, bits = x[:, :10], x[:, 10:].long()
        assert torch.equal(control.sum(1), torch.ones(len(x))) and torch.equal(control.argmax(1), which)
        assert torch.equal(y, _parity(bits, subsets, which))
        assert 0.35 < y.float().mean() < 0.65  # balanced labels (a constant label would fail)
    # negative control: another subtask's parity disagrees with the labels on about half the examples
    shifted = _parity(task.x_train[:, 10:].long(), subsets, (task.extras["train_task"] + 1) % 10)
    assert (shifted != task.y_train).float().mean() > 0.3


def test_tokens_layout():
    spec = QuantaSpec(n_tasks=10, n_bits=12, n_train=300, n_test=50, layout="tokens")
    task = make_task(spec, seed=0)
    bits_task = make_task(spec.model_copy(update={"layout": "bits"}), seed=0)
    assert task.x_train.shape == task.y_train.shape == (300, 13) and task.x_train.dtype == torch.int64
    assert task.vocab_size == task.output_dim == 12
    assert torch.equal(task.x_train[:, 0], 2 + task.extras["train_task"])
    assert torch.equal(task.y_train[:, :-1], torch.full((300, 12), IGNORE_INDEX))
    # the same draws as the bits layout, only written differently
    assert torch.equal(task.x_train[:, 1:], bits_task.x_train[:, 10:].long())
    assert torch.equal(task.y_train[:, -1], bits_task.y_train)


def test_subtask_frequencies_are_zipfian():
    spec = QuantaSpec(n_tasks=20, alpha=0.4, n_train=20000, n_test=1)
    task = make_task(spec, seed=1)
    p = task.extras["task_probs"]
    expected = torch.arange(1, 21, dtype=torch.float64) ** -1.4
    assert torch.allclose(p, expected / expected.sum(), atol=1e-15, rtol=0)
    counts = torch.bincount(task.extras["train_task"], minlength=20).double()
    n = spec.n_train
    z = (counts - n * p) / (n * p * (1 - p)).sqrt()
    assert float(z.abs().max()) < 4.0  # binomial counts, 20 of them: |z| < 4 fails with prob ~1e-3
    # negative control: the same counts are far from a uniform law
    assert float(((counts - n / 20) / (n / 20 * (1 - 1 / 20)) ** 0.5).abs().max()) > 10


def test_seeding():
    spec = QuantaSpec(n_tasks=8, n_bits=10, n_train=100, n_test=10)
    a, b, c = make_task(spec, 0), make_task(spec, 0), make_task(spec, 1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.extras["subsets"], b.extras["subsets"])
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.extras["subsets"], c.extras["subsets"])


def test_k_must_fit():
    with pytest.raises(ValueError, match="n_bits"):
        QuantaSpec(n_bits=2, k=3)
