"""Brute-force references shared by the observables tests: explicit Hessians, known quadratics.

Not a test module. Everything is float64 and seeded; nothing is cached at module level.
"""

import torch
from torch import Tensor
from torch.func import functional_call


class Quadratic(torch.nn.Module):
    """A 'model' whose output is its parameter vector w (P,); with `quadratic_loss` the Hessian is A."""

    def __init__(self, w0: Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w0.clone())

    def forward(self, x: Tensor) -> Tensor:
        del x
        return self.w


def quadratic_loss(out: Tensor, a: Tensor) -> Tensor:
    """0.5 w^T A w: Hessian exactly A (the 'targets' slot carries A)."""
    return 0.5 * out @ a @ out


def known_spectrum_matrix(eigenvalues: Tensor, seed: int) -> Tensor:
    """Q diag(eigenvalues) Q^T with a seeded random orthogonal Q (float64)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return (q * eigenvalues) @ q.T


def small_mlp(seed: int, d_in: int = 4, width: int = 6, d_out: int = 3, n: int = 40,
              dtype: torch.dtype = torch.float64) -> tuple[torch.nn.Module, tuple[Tensor, Tensor]]:
    """A seeded tanh MLP and a classification batch (smooth, so the Hessian is well defined)."""
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, width), torch.nn.Tanh(), torch.nn.Linear(width, d_out))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.8)
    model = model.to(dtype)
    x = torch.randn(n, d_in, generator=g, dtype=dtype)
    y = torch.randint(0, d_out, (n,), generator=g)
    return model, (x, y)


def ce(out: Tensor, y: Tensor) -> Tensor:
    return torch.nn.functional.cross_entropy(out, y)


def explicit_hessian(model: torch.nn.Module, loss_fn, batch) -> Tensor:
    """(P, P) Hessian via torch.autograd.functional.hessian over the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(t: Tensor) -> Tensor:
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = t[i:i + s.numel()].view(s)
            i += s.numel()
        return loss_fn(functional_call(model, params, (batch[0],)), batch[1])

    return torch.autograd.functional.hessian(f, flat)


def snapshot(model: torch.nn.Module) -> dict[str, Tensor]:
    """Copies of every parameter and buffer, to check an instrument left the model untouched."""
    return {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())}


def assert_untouched(model: torch.nn.Module, before: dict[str, Tensor]) -> None:
    """Parameters/buffers bit-identical to `before` and no gradient left behind."""
    now = snapshot(model)
    assert now.keys() == before.keys()
    for n in before:
        assert torch.equal(now[n], before[n]), f"{n} was modified"
    for n, p in model.named_parameters():
        assert p.grad is None, f"{n}.grad was written"
