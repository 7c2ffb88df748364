"""A user's own model for `lmech sweep examples/factory_sweep.yaml` (run from the repository root)."""

import torch


def mlp(width: int = 32, depth: int = 2) -> torch.nn.Module:
    """A plain torch MLP for the 8x8 digits: (N, 64) -> (N, 10) logits."""
    layers, size = [], 64
    for _ in range(depth):
        layers += [torch.nn.Linear(size, width), torch.nn.GELU()]
        size = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(size, 10))
