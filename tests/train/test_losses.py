import torch

from lmech.instruments.losses import named_loss
from lmech.train.losses import per_member_loss


def test_cross_entropy_matches_torch_in_float64():
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(3, 40, 10, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 10, (40,), generator=g)
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[k], labels) for k in range(3)])
    # exact identity in float64 up to summation order
    assert (per_member_loss(logits, labels, "cross_entropy") - expected).abs().max() < 1e-12
    per_member_labels = torch.randint(0, 10, (3, 40), generator=g)
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[k], per_member_labels[k]) for k in range(3)])
    assert (per_member_loss(logits, per_member_labels, "cross_entropy") - expected).abs().max() < 1e-12


def test_mse_is_half_the_summed_square_averaged_over_examples():
    outputs, targets = torch.ones(2, 4, 3), torch.zeros(4, 3)
    assert torch.equal(per_member_loss(outputs, targets, "half_sse"), torch.full((2,), 1.5))


def test_mse_is_torch_mse_loss_per_member():
    g = torch.Generator().manual_seed(1)
    outputs, targets = torch.randn(3, 7, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    expected = torch.stack([torch.nn.functional.mse_loss(outputs[k], targets) for k in range(3)])
    assert (per_member_loss(outputs, targets, "mse") - expected).abs().max() < 1e-14  # float64 identity
    # half_sse is mse * C / 2 (C = 4 outputs): the two names differ by exactly that factor
    assert (per_member_loss(outputs, targets, "half_sse") - 2.0 * expected).abs().max() < 1e-13


def test_sequence_cross_entropy_with_ignore_index_matches_torch():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 6, 9, generator=g, dtype=torch.float64)  # (K, N, T, V)
    labels = torch.randint(0, 9, (5, 6), generator=g)
    labels[0, :3] = -100
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[k].reshape(-1, 9), labels.reshape(-1))
                            for k in range(2)])
    assert (per_member_loss(logits, labels, "cross_entropy") - expected).abs().max() < 1e-12
    named = named_loss("cross_entropy")(logits[1], labels)
    assert abs(float(named) - float(expected[1])) < 1e-12
