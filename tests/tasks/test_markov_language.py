"""markov_language: the exact entropy rate agrees with a Monte-Carlo estimate from the sampled
transitions; pi is stationary; targets are the next tokens; seeding."""

import pytest
import torch

from lmech.tasks import IGNORE_INDEX, make_task
from lmech.tasks.markov_language import MarkovLanguageSpec


def _transition_nll(task, spec, transition: torch.Tensor) -> torch.Tensor:
    """-log P[context, target] for every scored position of the training set, flattened."""
    v, k = spec.vocab_size, spec.order
    powers = v ** torch.arange(k - 1, -1, -1)
    x, y = task.x_train, task.y_train
    out = []
    for i in range(k - 1, spec.seq_len):
        context = (x[:, i - k + 1:i + 1] * powers).sum(1)
        out.append(-transition[context, y[:, i]].log())
    return torch.cat(out)


@pytest.mark.parametrize("spec", [MarkovLanguageSpec(),
                                  MarkovLanguageSpec(vocab_size=6, order=2, concentration=0.5, n_train=2048, n_test=8)],
                         ids=["order1", "order2"])
def test_entropy_rate_matches_monte_carlo(spec):
    task = make_task(spec, seed=0)
    exact = task.extras["entropy_rate"]
    assert exact.dim() == 0 and exact.dtype == torch.float64
    nll = _transition_nll(task, spec, task.extras["transition"])
    assert nll.numel() == spec.n_train * (spec.seq_len - spec.order + 1)
    # 1% of H is at least 4 standard errors of the mean at these sample counts (SE 0.17% of H for
    # order 1, 0.18% for order 2, measured); the chain mixes within a few steps, so the correlation
    # along a sequence barely inflates the naive SE.
    standard_error = nll.std() / nll.numel() ** 0.5
    assert standard_error < 0.0025 * exact
    assert abs(nll.mean() - exact) < 0.01 * exact
    # negative control: the same samples scored by another seed's chain are far from H (cross-entropy = H + KL)
    wrong = make_task(spec, seed=1).extras["transition"]
    assert abs(_transition_nll(task, spec, wrong).mean() - exact) > 0.01 * exact


def test_stationary_distribution_is_stationary():
    spec = MarkovLanguageSpec(vocab_size=5, order=2)
    task = make_task(spec, seed=3)
    pi, transition = task.extras["stationary"], task.extras["transition"]
    v = spec.vocab_size
    # pushed forward one token without the solver's matrix: context (a, b) -> (b, u)
    moved = (pi.reshape(v, v, 1) * transition.reshape(v, v, v)).sum(0).reshape(-1)
    assert torch.allclose(moved, pi, atol=1e-12, rtol=0)  # float64 linear solve
    assert abs(pi.sum().item() - 1) < 1e-12 and bool((pi > 0).all())
    assert torch.allclose(transition.sum(1), torch.ones(v * v, dtype=torch.float64), atol=1e-12, rtol=0)


def test_shapes_targets_and_seeding():
    spec = MarkovLanguageSpec(vocab_size=7, order=3, seq_len=20, n_train=30, n_test=10)
    a, b, c = make_task(spec, 4), make_task(spec, 4), make_task(spec, 5)
    assert a.x_train.shape == a.y_train.shape == (30, 20) and a.x_test.shape == (10, 20)
    assert a.x_train.dtype == a.y_train.dtype == torch.int64
    assert a.vocab_size == a.output_dim == 7 and a.loss == "cross_entropy" and a.input_shape == (20,)
    assert int(a.x_train.min()) >= 0 and int(a.x_train.max()) < 7
    assert torch.equal(a.y_train[:, :2], torch.full((30, 2), IGNORE_INDEX))  # tokens of the start context
    assert torch.equal(a.y_train[:, 2:-1], a.x_train[:, 3:])  # the rest are the next tokens
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.extras["transition"], b.extras["transition"])
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.extras["transition"], c.extras["transition"])
    assert not torch.equal(a.x_train[:10], a.x_test)  # train and test are separate draws


def test_too_many_contexts_is_refused():
    with pytest.raises(ValueError, match="contexts"):
        MarkovLanguageSpec(vocab_size=64, order=3)
