"""Hessian-vector products of a loss over a flat parameter vector, plus flat <-> dict helpers.

One job: turn (model, loss_fn, batch) into a function v -> H v on a flat vector of
the model's trainable parameters, without touching the model. It ignores
eigen-solvers, probes and statistics (see `_lanczos.py` and the instruments).

Design: reverse-over-reverse (double backward) through a first-order graph
built once in `make_hvp` and reused (retain_graph=True) by every HVP; it
measured faster than forward-over-reverse (torch.func jvp of grad) on CPU
(bench/NOTES.md, `_hvp.make_hvp`). The same graph gives the output pullback
u -> J^T u (a backward pass through the forward graph only, no second-order
terms), used for Krylov start vectors.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.instruments._call import Batch, functional_outputs

__all__ = ["ParamLayout", "HVP", "param_layout", "flatten_params", "unflatten_params", "make_hvp",
           "loss_at"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and sizes of the trainable parameters, in `named_parameters()` order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]

    @property
    def size(self) -> int:
        """P, the total number of trainable scalars."""
        return sum(self.numels)


def param_layout(model: torch.nn.Module) -> ParamLayout:
    """Layout of `model`'s parameters with requires_grad=True (frozen ones are excluded)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    return ParamLayout(tuple(n for n, _ in named), tuple(p.shape for _, p in named),
                       tuple(p.numel() for _, p in named))


def flatten_params(params: dict[str, Tensor], layout: ParamLayout) -> Float[Tensor, " P"]:
    """Concatenate `params[name]` for the layout's names into one flat (P,) vector (a copy)."""
    missing = [n for n in layout.names if n not in params]
    if missing:
        raise KeyError(f"parameters missing from dict: {missing[:5]}")
    return torch.cat([params[n].reshape(-1) for n in layout.names])


def unflatten_params(flat: Float[Tensor, " P"], layout: ParamLayout) -> dict[str, Tensor]:
    """Split a flat (P,) vector into {name: tensor of the parameter's shape} (views of `flat`)."""
    if flat.ndim != 1 or flat.numel() != layout.size:
        raise ValueError(f"flat vector has shape {tuple(flat.shape)}, expected ({layout.size},)")
    chunks = torch.split(flat, list(layout.numels))
    return {n: c.view(s) for n, c, s in zip(layout.names, chunks, layout.shapes)}


def _buffers(model: torch.nn.Module) -> dict[str, Tensor]:
    # Copies, so a module that writes running statistics in forward (BatchNorm in
    # train mode) writes into the copies, never the caller's buffers.
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def _outputs_and_loss(model: torch.nn.Module, loss_fn: LossFn, batch: Batch,
                      params: dict[str, Tensor]) -> tuple[object, Tensor]:
    inputs, targets = batch
    full = dict(model.named_parameters())
    full.update(params)
    full.update(_buffers(model))
    outputs = functional_outputs(model, full, inputs)
    return outputs, loss_fn(outputs, targets)


def loss_at(model: torch.nn.Module, loss_fn: LossFn, batch: Batch,
            params: dict[str, Tensor]) -> Tensor:
    """loss_fn(model(inputs; params), targets) via functional_call; the model is not modified.

    Parameters absent from `params` (frozen ones) are taken from the model.
    """
    return _outputs_and_loss(model, loss_fn, batch, params)[1]


@dataclass(frozen=True)
class HVP:
    """A Hessian-vector product closure and what it was built from.

    Attributes:
        layout: parameter layout (order of the flat vector).
        theta: (P,) detached copy of the parameters at which H is taken.
        loss: the loss value there (float).
        grad: (P,) detached gradient there.
        matvec: v (P,) or (B, P) -> H v of the same shape, in theta's dtype.
            A (B, P) input runs B products in one vmapped backward pass.
        output_shape: shape of the model's output tensor, or None when the
            output is not a floating tensor depending on the parameters.
        pullback: u (output_shape) -> J^T u (P,), J = d outputs / d theta (one
            backward pass through the forward graph); None with output_shape.
    """

    layout: ParamLayout
    theta: Tensor
    loss: float
    grad: Tensor
    matvec: Callable[[Tensor], Tensor]
    output_shape: torch.Size | None = None
    pullback: Callable[[Tensor], Tensor] | None = None


def make_hvp(model: torch.nn.Module, loss_fn: LossFn, batch: Batch) -> HVP:
    """Build v -> H v for the Hessian of the batch loss w.r.t. the trainable parameters.

    Args:
        model: any module; its parameters and buffers are copied, never modified.
        loss_fn: (outputs, targets) -> scalar loss (mean over the batch).
        batch: (inputs, targets), the whole batch the Hessian is taken on.

    Returns:
        HVP whose matvec maps (P,) -> (P,) (or (B, P) -> (B, P)), and the
        output pullback u -> J^T u when the model returns one floating tensor.

    Algorithm:
        Copy the parameters into fresh leaves, run one forward/backward with
        create_graph=True (cost ~1 gradient, memory ~ activations + a second
        graph), then each product is one backward through that graph
        (autograd.grad(g, theta, v, retain_graph=True)), about two gradients'
        cost. The graph lives as long as the returned closure.

    Source:
        Pearlmutter (1994) "Fast exact multiplication by the Hessian"; the
        build-once layout follows PyHessian (Yao et al. 2020).

    Failure modes:
        Non-differentiable-twice ops (e.g. ReLU) give the Hessian of the
        piecewise-smooth loss (zero second derivative at kinks), as every
        autograd-based tool does. Models with randomness in forward (dropout in
        train mode) give a Hessian of one random draw; call model.eval() first.
    """
    layout = param_layout(model)
    named = dict(model.named_parameters())
    theta = torch.cat([named[n].detach().reshape(-1) for n in layout.names]).clone()
    leaves = theta.clone().requires_grad_(True)
    with torch.enable_grad():
        outputs, loss = _outputs_and_loss(model, loss_fn, batch, unflatten_params(leaves, layout))
        if loss.ndim != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        (g,) = torch.autograd.grad(loss, leaves, create_graph=True)

    def matvec(v: Tensor) -> Tensor:
        if v.shape[-1] != layout.size or v.ndim not in (1, 2):
            raise ValueError(f"vector has shape {tuple(v.shape)}, expected (P,) or (B, P), P={layout.size}")
        v = v.to(dtype=g.dtype)
        if not g.requires_grad:  # loss linear in the parameters: H = 0
            return torch.zeros_like(v)
        (hv,) = torch.autograd.grad(g, leaves, v, retain_graph=True, allow_unused=True,
                                    is_grads_batched=v.ndim == 2)
        return torch.zeros_like(v) if hv is None else hv.detach()

    pullback = None
    if isinstance(outputs, Tensor) and outputs.is_floating_point() and outputs.requires_grad:
        def pullback(u: Tensor) -> Tensor:
            if u.shape != outputs.shape:
                raise ValueError(f"cotangent has shape {tuple(u.shape)}, expected {tuple(outputs.shape)}")
            (ju,) = torch.autograd.grad(outputs, leaves, u.to(outputs.dtype), retain_graph=True,
                                        allow_unused=True)
            return torch.zeros_like(theta) if ju is None else ju.detach()

    return HVP(layout, theta, float(loss.detach()), g.detach().clone(), matvec,
               outputs.shape if pullback is not None else None, pullback)
