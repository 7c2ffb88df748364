"""A user's own model and data for `lmech forecast ...` (run from the repository root).

Every factory takes `width` as a keyword (the forecasts that need a size axis call it with
several widths) and builds a plain torch module; the data functions return (inputs, targets)
tensors, fixed by their seed. `mlp`/`classifier` with `regression`/`classification` are for
max-lr and batch; `relu_mlp` with `teacher` (the design of the atlas phenomenon
forecast-lr-transfer) for lr-transfer. Commands that use this module are listed in
examples/FORECASTS.md, e.g.

    .venv/bin/lmech forecast max-lr --model examples.forecast_model:mlp --data examples.forecast_model:regression
"""

import math

import torch

INPUTS = 16
CLASSES = 4


def _activation(name: str) -> torch.nn.Module:
    table = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "gelu": torch.nn.GELU}
    if name not in table:
        raise ValueError(f"activation must be one of {', '.join(table)}, got {name!r}")
    return table[name]()


def mlp(width: int = 64, depth: int = 2, activation: str = "tanh", outputs: int = 1, seed: int = 0) -> torch.nn.Module:
    """A plain torch MLP: (N, 16) -> (N, outputs); `depth` hidden layers of `width` units,
    PyTorch's default (Kaiming-uniform, standard-parametrization) initialization drawn from `seed`
    (the global RNG is left as it was)."""
    if int(width) < 1 or int(depth) < 1:
        raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers, size = [], INPUTS
        for _ in range(int(depth)):
            layers += [torch.nn.Linear(size, int(width)), _activation(activation)]
            size = int(width)
        return torch.nn.Sequential(*layers, torch.nn.Linear(size, int(outputs)))


def classifier(width: int = 64, depth: int = 2, seed: int = 0) -> torch.nn.Module:
    """The same MLP with 4 logits, for `classification` (cross-entropy)."""
    return mlp(width=width, depth=depth, activation="gelu", outputs=CLASSES, seed=seed)


def _teacher_inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, INPUTS, generator=generator), generator


def regression(n: int = 512, noise: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 16), targets (n, 1)): a random two-layer tanh teacher plus Gaussian label noise
    of standard deviation `noise` (so the gradient noise scale is finite at the optimum)."""
    x, generator = _teacher_inputs(n, seed)
    hidden = torch.randn(INPUTS, 32, generator=generator) / math.sqrt(INPUTS)
    readout = torch.randn(32, 1, generator=generator) / math.sqrt(32)
    y = torch.tanh(x @ hidden) @ readout * 2.0
    return x, y + noise * torch.randn(y.shape, generator=generator)


def classification(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 16), labels (n,) in 0..3): the argmax of a random linear teacher's 4 scores."""
    x, generator = _teacher_inputs(n, seed)
    scores = x @ torch.randn(INPUTS, CLASSES, generator=generator)
    return x, scores.argmax(dim=1)


# --- for `lmech forecast lr-transfer` (the design of the atlas phenomenon forecast-lr-transfer) ---
TEACHER_INPUTS, TEACHER_WIDTH = 4, 64


def relu_mlp(width: int = 64, seed: int = 0) -> torch.nn.Module:
    """One hidden layer of `width` ReLU units: (N, 4) -> (N, 1), PyTorch's default initialization
    (standard parametrization, so SGD's optimal lr falls like 1/width) drawn from `seed`."""
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(TEACHER_INPUTS, int(width)), torch.nn.ReLU(),
                                   torch.nn.Linear(int(width), 1))


def teacher(n: int = 4096, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 4), targets (n, 1)): y = a^T tanh(W x / 2) / 8 + noise, a random width-64 tanh
    teacher (W (64, 4), a (64,) standard normal) plus Gaussian label noise of standard deviation `noise`."""
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(TEACHER_WIDTH, TEACHER_INPUTS, generator=generator)
    a = torch.randn(TEACHER_WIDTH, 1, generator=generator)
    x = torch.randn(n, TEACHER_INPUTS, generator=generator)
    y = torch.tanh(x @ w.T / math.sqrt(TEACHER_INPUTS)) @ a / math.sqrt(TEACHER_WIDTH)
    return x, y + noise * torch.randn(y.shape, generator=generator)
