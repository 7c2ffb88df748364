"""A user's code for the `lmech measure` tests: a model factory and a data function (not a test module)."""

import torch


def make_mlp() -> torch.nn.Module:
    """A seeded tanh MLP 4 -> 8 -> 3 in float64."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def make_wide_mlp() -> torch.nn.Module:
    """Same input/output as make_mlp but hidden width 9: make_mlp's weights do not fit it."""
    return torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.Tanh(), torch.nn.Linear(9, 3)).double()


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """32 seeded examples with 4 float64 features and 3 classes."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (32,), generator=g)
