"""A user's models and data for `lmech forecast compute` and `lmech forecast curve` (run from the repository root).

`factored_linear(width)` is a rank-`width` linear map 32 -> width -> 32 (no biases: 64 x width
parameters, the width is the model size), `power_law_map()` a large regression set y = M x + noise
with singular values of M falling as k^-1, so a width-w model can only fit the top w directions
and one pass over the data rarely repeats an example (online learning). The `_128` pair is the
design of the atlas phenomenon forecast-compute (input dimension 128, so the compute-optimal width
stays well below the rank), the `_48` pair (label noise 0.5) that of forecast-curve. Commands and
their measured outputs: examples/FORECASTS.md, e.g.

    .venv/bin/lmech forecast compute --model examples.forecast_scaling_model:factored_linear_128 \
        --data examples.forecast_scaling_model:power_law_map_128 --loss half_sse --batch-size 64 --lr 0.05 \
        --seeds 4 --widths 2,3,4,6,8,12,16,24,32,48,64,96,128,192,256 --budgets 8e7,1.6e8,3.2e8,6.4e8 \
        --target-budget 2.56e9 --max-steps 1024 --check
"""

import math

import torch

DIM = 32
DIM_WIDE = 128  # forecast-compute's design: the compute-optimal width (about 50 at 2.56e9 FLOPs) stays below the rank
DIM_CURVE = 48  # forecast-curve's design (fast): dimension 48, width 48, label noise 0.5


def _factored(dim: int, width: int, seed: int) -> torch.nn.Module:
    """x (N, dim) -> (N, dim) through a width-`width` bottleneck (2 x dim x width parameters, no biases),
    init 0.3 x N(0, 1/fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(dim, int(width), bias=False), torch.nn.Linear(int(width), dim, bias=False))
    with torch.no_grad():
        for layer in model:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(0.3 * torch.randn(layer.weight.shape, generator=generator) / math.sqrt(fan_in))
    return model


def _power_law(dim: int, n: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, dim), targets (n, dim)): y = U diag(k^-1) V^T x + noise, U and V random orthogonal."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    m = u @ torch.diag(1.0 / torch.arange(1, dim + 1, dtype=torch.float32)) @ v.T
    x = torch.randn(n, dim, generator=generator)
    return x, x @ m.T + noise * torch.randn(n, dim, generator=generator)


def factored_linear(width: int = 16, seed: int = 0) -> torch.nn.Module:
    """x (N, 32) -> (N, 32) through a width-`width` bottleneck, init 0.3 x PyTorch's default."""
    return _factored(DIM, width, seed)


def power_law_map(n: int = 1 << 18, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 32), targets (n, 32)): y = U diag(k^-1) V^T x + noise, U and V random orthogonal."""
    return _power_law(DIM, n, noise, seed)


def factored_linear_128(width: int = 16, seed: int = 0) -> torch.nn.Module:
    """x (N, 128) -> (N, 128) through a width-`width` bottleneck, as forecast-compute's deep linear net."""
    return _factored(DIM_WIDE, width, seed)


def power_law_map_128(n: int = 1 << 17, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 128), targets (n, 128)); n = 131072 is twice the most examples a rung of the
    example's ladders draws (65,536), so training is close to online and the recorded training loss
    close to the test loss."""
    return _power_law(DIM_WIDE, n, noise, seed)


def factored_linear_48(width: int = 48, seed: int = 0) -> torch.nn.Module:
    """x (N, 48) -> (N, 48) through a width-`width` bottleneck."""
    return _factored(DIM_CURVE, width, seed)


def noisy_power_law_map_48(n: int = 1 << 15, noise: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 48), targets (n, 48)) with label noise 0.5."""
    return _power_law(DIM_CURVE, n, noise, seed)
