import torch

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
    assert torch.equal(per_member_loss(outputs, targets, "mse"), torch.full((2,), 1.5))
