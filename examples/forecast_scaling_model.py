"""A user's model and data for `lmech forecast compute` (run from the repository root).

`factored_linear(width)` is a rank-`width` linear map 32 -> width -> 32 (no biases: 64 x width
parameters, the width is the model size), `power_law_map()` a large regression set y = M x + noise
with singular values of M falling as k^-1, so a width-w model can only fit the top w directions
and one pass over the data rarely repeats an example (online learning):

    .venv/bin/lmech forecast compute --model examples.forecast_scaling_model:factored_linear \
        --data examples.forecast_scaling_model:power_law_map --widths 4,8,16,32,64,128 \
        --budgets 1e7,2e7,4e7,8e7 --target-budget 3.2e8 --lr 0.02 --batch-size 32 --check
"""

import math

import torch

DIM = 32


def factored_linear(width: int = 16, seed: int = 0) -> torch.nn.Module:
    """x (N, 32) -> (N, 32) through a width-`width` bottleneck, init 0.3 x PyTorch's default."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(DIM, int(width), bias=False), torch.nn.Linear(int(width), DIM, bias=False))
    with torch.no_grad():
        for layer in model:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(0.3 * torch.randn(layer.weight.shape, generator=generator) / math.sqrt(fan_in))
    return model


def power_law_map(n: int = 1 << 18, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 32), targets (n, 32)): y = U diag(k^-1) V^T x + noise, U and V random orthogonal."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=generator))
    m = u @ torch.diag(1.0 / torch.arange(1, DIM + 1, dtype=torch.float32)) @ v.T
    x = torch.randn(n, DIM, generator=generator)
    return x, x @ m.T + noise * torch.randn(n, DIM, generator=generator)
