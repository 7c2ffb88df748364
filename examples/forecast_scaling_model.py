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


# --- the design of the atlas phenomenon forecast-compute: input dimension 128, so the compute-optimal
# width (about 50 at the held-out budget 2.56e9 FLOPs) stays well below the rank of the map ---
DIM_WIDE = 128


def factored_linear_128(width: int = 16, seed: int = 0) -> torch.nn.Module:
    """x (N, 128) -> (N, 128) through a width-`width` bottleneck (2 x 128 x width parameters, no biases),
    init 0.3 x N(0, 1/fan_in), as forecast-compute's deep linear net."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(DIM_WIDE, int(width), bias=False),
                                torch.nn.Linear(int(width), DIM_WIDE, bias=False))
    with torch.no_grad():
        for layer in model:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(0.3 * torch.randn(layer.weight.shape, generator=generator) / math.sqrt(fan_in))
    return model


def power_law_map_128(n: int = 1 << 17, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 128), targets (n, 128)): y = U diag(k^-1) V^T x + noise, U and V random orthogonal;
    n = 131072 is twice the most examples a rung of the example's ladders draws (65,536), so training
    is close to online and the recorded training loss close to the test loss."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(DIM_WIDE, DIM_WIDE, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(DIM_WIDE, DIM_WIDE, generator=generator))
    m = u @ torch.diag(1.0 / torch.arange(1, DIM_WIDE + 1, dtype=torch.float32)) @ v.T
    x = torch.randn(n, DIM_WIDE, generator=generator)
    return x, x @ m.T + noise * torch.randn(n, DIM_WIDE, generator=generator)


# --- the design of the atlas phenomenon forecast-curve (fast): dimension 48, width 48, label noise 0.5 ---
DIM_CURVE = 48


def factored_linear_48(width: int = 48, seed: int = 0) -> torch.nn.Module:
    """x (N, 48) -> (N, 48) through a width-`width` bottleneck (no biases), init 0.3 x N(0, 1/fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(DIM_CURVE, int(width), bias=False),
                                torch.nn.Linear(int(width), DIM_CURVE, bias=False))
    with torch.no_grad():
        for layer in model:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(0.3 * torch.randn(layer.weight.shape, generator=generator) / math.sqrt(fan_in))
    return model


def noisy_power_law_map_48(n: int = 1 << 15, noise: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, 48), targets (n, 48)): y = U diag(k^-1) V^T x + noise (0.5), U and V random orthogonal."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(DIM_CURVE, DIM_CURVE, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(DIM_CURVE, DIM_CURVE, generator=generator))
    m = u @ torch.diag(1.0 / torch.arange(1, DIM_CURVE + 1, dtype=torch.float32)) @ v.T
    x = torch.randn(n, DIM_CURVE, generator=generator)
    return x, x @ m.T + noise * torch.randn(n, DIM_CURVE, generator=generator)
