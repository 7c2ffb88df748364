"""The data, models and training recipe the benchmarks share (one copy, so they measure the same things).

Benchmarks run as scripts (`python bench/x.py`), so this module is imported by name from bench/.
"""

import copy

import torch


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 sklearn digits, standardized per pixel over the whole set: (1797, 64) float32, labels (1797,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    std = x.std(0)
    x = (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    return x, torch.tensor(d.target)


def relu_mlp(widths: list[int], seed: int) -> torch.nn.Module:
    """nn.Sequential of Linear layers with ReLU between them, PyTorch's default init under manual_seed(seed)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layers = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])


def train_full_batch(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], steps: int,
                     lr: float) -> torch.nn.Module:
    """A copy of `model` after `steps` full-batch SGD steps on cross-entropy (the input is untouched)."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model
