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


def raising_factory() -> torch.nn.Module:
    """A factory with a bug in it."""
    raise ValueError("width must be even")


def not_a_module():
    """A factory that returns the wrong kind of thing."""
    return {"weights": 1}


def raising_data():
    """A data function with a bug in it."""
    raise KeyError("missing split")


def make_token_model() -> torch.nn.Module:
    """Embedding (vocabulary 5) + linear readout: (N, T) int64 -> (N, T, 5)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Embedding(5, 6), torch.nn.Linear(6, 5)).double()


def out_of_vocabulary_tokens():
    """Token ids up to 8, past make_token_model's vocabulary of 5."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 9, (8, 4), generator=g)
    return x, torch.roll(x, -1, 1)


def tokens():
    """Token ids inside the vocabulary of 5: next-token targets (N, T)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 5, (8, 4), generator=g)
    return x, torch.roll(x, -1, 1)


def dict_data():
    """data() with inputs as a dict, for a model taking keyword inputs."""
    x, y = data()
    return {"features": x}, y


class KeywordMLP(torch.nn.Module):
    """make_mlp's network called as model(features=...) and returning (logits, extra)."""

    def __init__(self):
        super().__init__()
        self.net = make_mlp()

    def forward(self, features):
        return self.net(features), None


def make_keyword_mlp() -> torch.nn.Module:
    return KeywordMLP()
