"""Empirical neural tangent kernel Gram matrices, and kernel alignment/distance.

One job: K(x, x') = J(x) J(x')^T at the current parameters, where J is the
Jacobian of the outputs w.r.t. the trainable parameters, plus two scalar
comparisons of kernels. It ignores the infinite-width NTK (see `theory/`).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor
from torch.func import jacrev, vmap

from lmech.instruments._call import Inputs, functional_outputs, map_inputs, num_examples, take
from lmech.instruments._hvp import param_layout
from lmech.instruments._json import JsonResult
from lmech.instruments._state import measures_model

__all__ = ["NTKGram", "ntk_gram", "structured_layers", "kernel_alignment", "kernel_distance"]

Contraction = Literal["trace", "diagonal", "full"]
Method = Literal["auto", "structured", "jacobian"]

# Modules that act on each coordinate alone (their Jacobian is diagonal), so the
# structured path can carry their derivative as an elementwise factor.
_ELEMENTWISE = (torch.nn.Identity, torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU,
                torch.nn.ELU, torch.nn.CELU, torch.nn.SELU, torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish,
                torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.Hardtanh, torch.nn.Hardswish, torch.nn.Hardsigmoid,
                torch.nn.Softplus, torch.nn.Softsign, torch.nn.Tanhshrink)


@dataclass(frozen=True)
class NTKGram(JsonResult):
    """Empirical NTK Gram matrix.

    Attributes:
        gram: float tensor in the model's dtype; shape by contraction:
            "trace" (N, N2): sum_c <dF_c(x_n)/dθ, dF_c(x_m)/dθ>;
            "diagonal" (N, N2, C): per logit c, <dF_c(x_n)/dθ, dF_c(x_m)/dθ>;
            "full" (N, N2, C, C): <dF_c(x_n)/dθ, dF_d(x_m)/dθ>.
            Units: output units^2 per parameter unit^2.
        contraction: which of the three.
    """

    gram: Tensor
    contraction: str


def _jacobian_chunks(model: torch.nn.Module, inputs: Tensor, chunk_size: int) -> Iterator[list[Tensor]]:
    """Yield, for consecutive chunks of n inputs, the per-sample Jacobians as one (n, C, p)
    block per trainable parameter (p its size), never concatenated into (n, C, P)."""
    layout = param_layout(model)
    named = dict(model.named_parameters())
    params = {n: named[n].detach() for n in layout.names}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}

    def f(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_outputs(model, {**p, **frozen, **buffers}, map_inputs(x, lambda t: t[None]))[0].reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))
    for start in range(0, num_examples(inputs), chunk_size):
        with torch.no_grad():  # jacrev builds its own graph; nothing reaches the caller's tensors
            j = jac(params, take(inputs, slice(start, start + chunk_size)))
        yield [j[name].reshape(*j[name].shape[:2], -1) for name in layout.names]


class _LayerFactors(NamedTuple):
    """One Linear layer's share of the Jacobian for a chunk of n samples: d f_c(x_i) / d W =
    cotangents[c, i] (outer) inputs[i], d f_c(x_i) / d b = cotangents[c, i]."""

    inputs: Tensor | None  # (n, fan_in), None when the weight is frozen
    cotangents: Tensor  # (C, n, fan_out)
    bias: bool  # the layer has a trainable bias


def structured_layers(model: torch.nn.Module) -> tuple[list[torch.nn.Module], bool] | None:
    """(modules, flatten_first) when `model` is an MLP the structured path handles, else None.

    Handled: a plain nn.Sequential of nn.Linear layers and parameter-free elementwise
    activations (`_ELEMENTWISE`: ReLU, Tanh, GELU, ...), optionally starting with
    nn.Flatten(), with no hooks, at least one trainable Linear parameter and no other
    parameters or buffers.
    """
    if type(model) is not torch.nn.Sequential or model._forward_hooks or model._forward_pre_hooks:
        return None
    modules = list(model)
    flatten = bool(modules) and type(modules[0]) is torch.nn.Flatten
    if flatten:
        if (modules[0].start_dim, modules[0].end_dim) != (1, -1):
            return None
        modules = modules[1:]
    for module in modules:
        if module._forward_hooks or module._forward_pre_hooks:
            return None
        if type(module) is torch.nn.Linear:
            continue
        if type(module) not in _ELEMENTWISE or any(True for _ in module.parameters()) \
                or any(True for _ in module.buffers()):
            return None
    trainable = [p.requires_grad for m in modules if type(m) is torch.nn.Linear for p in m.parameters()]
    return (modules, flatten) if any(trainable) else None


def _derivative(module: torch.nn.Module, z: Tensor) -> Tensor:
    """phi'(z) of an elementwise module, by one backward pass of sum(phi(z)) (autograd's convention
    at kinks, e.g. ReLU'(0) = 0, as in the Jacobian path)."""
    with torch.enable_grad():
        leaf = z.detach().clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(module(leaf * 1.0).sum(), leaf)
    return slope


def _structured_factors(modules: list[torch.nn.Module], flatten: bool, x: Tensor) -> list[_LayerFactors]:
    """Per trainable Linear layer, the inputs it saw and the logits' cotangents at its output."""
    with torch.no_grad():
        a = x.reshape(x.shape[0], -1) if flatten else x  # (n, features): ntk_gram checked
        linears: list[list] = []  # [module, its input, derivative of the activations after it]
        for module in modules:
            if type(module) is torch.nn.Linear:
                linears.append([module, a, None])
                a = torch.nn.functional.linear(a, module.weight, module.bias)
                continue
            slope = _derivative(module, a)
            a = module(a.clone() if getattr(module, "inplace", False) else a)
            if linears:  # activations before the first Linear only transform the inputs
                linears[-1][2] = slope if linears[-1][2] is None else linears[-1][2] * slope
        n, classes = a.shape
        factors, cotangent, above = [], None, None
        for module, inputs, slope in reversed(linears):
            if cotangent is None:  # the last Linear: d f_c / d z = e_c (times the trailing slopes)
                cotangent = torch.eye(classes, dtype=a.dtype, device=a.device)[:, None, :].expand(classes, n, classes)
            else:
                cotangent = cotangent @ above.weight
            if slope is not None:
                cotangent = cotangent * slope
            weight = module.weight.requires_grad
            bias = module.bias is not None and module.bias.requires_grad
            if weight or bias:
                factors.append(_LayerFactors(inputs if weight else None, cotangent, bias))
            above = module
    return factors


def _structured_block(f1: list[_LayerFactors], f2: list[_LayerFactors], contraction: Contraction) -> Tensor:
    """Gram block sum_l (A1 A2^T + 1[bias]) o (cotangent grams), Novak et al. (2022) Sec. 4."""
    total = None
    for one, two in zip(f1, f2):
        classes, n, width = one.cotangents.shape
        m = two.cotangents.shape[1]
        scale = one.inputs @ two.inputs.T if one.inputs is not None else None
        if one.bias:
            scale = scale + 1.0 if scale is not None else one.cotangents.new_ones(n, m)
        if contraction == "trace":
            grams = one.cotangents.permute(1, 0, 2).reshape(n, classes * width) \
                @ two.cotangents.permute(1, 0, 2).reshape(m, classes * width).T
            term = scale * grams
        elif contraction == "diagonal":
            grams = torch.bmm(one.cotangents, two.cotangents.transpose(1, 2)).permute(1, 2, 0)
            term = scale[..., None] * grams
        else:
            grams = (one.cotangents.reshape(classes * n, width) @ two.cotangents.reshape(classes * m, width).T)
            term = scale[..., None, None] * grams.view(classes, n, classes, m).permute(1, 3, 0, 2)
        total = term if total is None else total + term
    return total


def _structured_gram(modules: list[torch.nn.Module], flatten: bool, inputs1: Tensor, inputs2: Tensor | None,
                     contraction: Contraction, cache_floats: int) -> Tensor:
    """The Gram from layer factors, in row chunks whose factors fit in half of cache_floats; the
    second set's factors are computed once when they fit in the other half."""
    second = inputs1 if inputs2 is None else inputs2
    linears = [m for m in modules if type(m) is torch.nn.Linear]
    classes = linears[-1].out_features
    per_sample = sum(m.in_features + classes * m.out_features for m in linears)  # factor floats a sample
    rows = max(1, cache_floats // (2 * per_sample))
    cached = _structured_factors(modules, flatten, second) if second.shape[0] <= rows else None
    blocks = []
    for start in range(0, inputs1.shape[0], rows):
        f1 = _structured_factors(modules, flatten, inputs1[start:start + rows])
        if cached is not None:
            blocks.append(_structured_block(f1, cached, contraction))
            continue
        blocks.append(torch.cat([_structured_block(f1, _structured_factors(modules, flatten, second[s:s + rows]), contraction)
                                 for s in range(0, second.shape[0], rows)], dim=1))
    return torch.cat(blocks, dim=0)


def _contract(j1: list[Tensor], j2: list[Tensor], contraction: Contraction) -> Tensor:
    """Gram block of two chunks' per-parameter Jacobian blocks, summed over parameters."""
    total = None
    for a, b in zip(j1, j2):
        if contraction == "trace":  # one GEMM over (C * p)
            term = a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
        elif contraction == "diagonal":
            term = torch.einsum("ncp,mcp->nmc", a, b)
        else:
            term = torch.einsum("ncp,mdp->nmcd", a, b)
        total = term if total is None else total.add_(term)
    return total


def _mirror(block: Tensor, contraction: Contraction) -> Tensor:
    """Block (j, i) of a symmetric Gram from block (i, j)."""
    return block.transpose(0, 1) if contraction != "full" else block.permute(1, 0, 3, 2)


@measures_model
def ntk_gram(model: torch.nn.Module, inputs1: Inputs,
             inputs2: Inputs | None = None, *, contraction: Contraction = "trace",
             method: Method = "auto", chunk_size: int = 256, cache_floats: int = 1 << 26) -> NTKGram:
    """Empirical NTK between inputs1 and inputs2 (inputs1 with itself when None).

    Args:
        model: maps a batch (n, ...) to outputs (n, C) (any trailing output shape
            is flattened to C). Not modified. Must treat samples independently
            (BatchNorm in train mode does not; instruments measure in eval mode by default).
        inputs1: (N, ...) inputs.
        inputs2: (N2, ...) inputs, or None for the symmetric N x N Gram.
        contraction: "trace", "diagonal" or "full" (see NTKGram).
        method: "structured" (MLPs only, see below), "jacobian" (any module), or
            "auto" (default): structured when `structured_layers(model)` accepts the
            model and the inputs are (N, features), else jacobian.
        chunk_size: samples per vmapped Jacobian (jacobian method; memory chunk_size * C * P
            floats). Larger chunks make the Gram contraction fewer, larger GEMMs (timings:
            bench/NOTES.md, `ntk.ntk_gram`); lower it for big models.
        cache_floats: jacobian method: when the second set's Jacobians (N2 * C * P
            floats) fit, they are computed once and kept (peak memory N2 * C * P
            floats); otherwise they are recomputed for every row chunk (peak
            ~ 2 * chunk_size * C * P floats). structured method: row chunks whose
            layer factors take at most cache_floats / 2, the second set's factors kept
            when they fit in the other half.

    Algorithm:
        jacobian: vmap(jacrev) of the single-sample functional model gives per-sample
        Jacobians (chunk, C, P); Gram blocks are einsum contractions. Cost
        ~ (N + N2) * C backward passes and N * N2 * C * P multiply-adds (full:
        C times more). Jacobians are computed once when they fit in cache_floats
        (the symmetric case then needs N * C backward passes and computes only the
        blocks on and above the diagonal), else recomputed per row chunk. The Jacobian
        stays one block per parameter (no (N, C, P) concatenation copy).
        structured (nn.Sequential of nn.Linear and elementwise activations): a Linear
        layer z = a W^T + b contributes d f_c / d W = g_c a^T and d f_c / d b = g_c, with
        g_c = d f_c / d z, so its NTK term is (a_i . a_j + 1[bias]) * (g_c(x_i) . g_d(x_j)).
        One forward pass keeps every layer's inputs a (N, fan_in) and activation slopes;
        the cotangents g (C, N, fan_out) of all C logits are pulled back together (C
        batched GEMMs a layer); each layer's term is two Gram GEMMs and a Hadamard
        product. Cost ~ N * N2 * C * sum(fan_out) (trace) instead of N * N2 * C * P,
        and no per-sample Jacobian is ever formed. Agrees with the jacobian method to
        float rounding (tests).

    Source:
        Jacot, Gabriel & Hongler (2018) "Neural tangent kernel"; empirical NTK
        as in Novak et al. (2022) "Fast finite width neural tangent kernel"
        (Sec. 3 Jacobian contraction; Sec. 4 structured derivatives, the layer-wise
        factorization used by the structured method), and neural-tangents' empirical_ntk_fn.

    Failure modes:
        Memory: chunk_size * C * P floats per Jacobian block; lower chunk_size
        for big models. Non-differentiable points (ReLU kinks) use autograd's
        subgradient convention.
    """
    if contraction not in ("trace", "diagonal", "full"):
        raise ValueError(f"contraction must be 'trace', 'diagonal' or 'full', got {contraction!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    if method not in ("auto", "structured", "jacobian"):
        raise ValueError(f"method must be 'auto', 'structured' or 'jacobian', got {method!r}")
    if method != "jacobian":
        layers = structured_layers(model)
        tensors = all(isinstance(x, Tensor) for x in (inputs1, inputs2) if x is not None)
        if layers is not None and tensors and (layers[1] or all(x.dim() == 2 for x in (inputs1, inputs2) if x is not None)):
            return NTKGram(_structured_gram(*layers, inputs1, inputs2, contraction, cache_floats), contraction)
        if method == "structured":
            raise ValueError("method='structured' needs an nn.Sequential of nn.Linear and elementwise "
                             "activations (optionally nn.Flatten first) on (N, features) inputs")
    symmetric = inputs2 is None
    second = inputs1 if symmetric else inputs2
    with torch.no_grad():  # on copies of the buffers: BatchNorm in train mode never touches the caller's
        tensors = {**dict(model.named_parameters()), **{n: b.clone() for n, b in model.named_buffers()}}
        outputs = int(functional_outputs(model, tensors, take(inputs1, slice(0, 1))).reshape(-1).numel())
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cache_second = num_examples(second) * outputs * size <= cache_floats
    second_chunks = None
    if cache_second:  # each Jacobian computed once; symmetric: the second set is the first
        second_chunks = list(_jacobian_chunks(model, second, chunk_size))
    if symmetric and cache_second:  # blocks on and above the diagonal only, mirrored below it
        blocks = [[None] * len(second_chunks) for _ in second_chunks]
        for i, j1 in enumerate(second_chunks):
            for j in range(i, len(second_chunks)):
                blocks[i][j] = _contract(j1, second_chunks[j], contraction)
                if j > i:
                    blocks[j][i] = _mirror(blocks[i][j], contraction)
        return NTKGram(torch.cat([torch.cat(row, dim=1) for row in blocks], dim=0), contraction)
    rows = []
    for j1 in _jacobian_chunks(model, inputs1, chunk_size):
        columns = second_chunks if cache_second else _jacobian_chunks(model, second, chunk_size)
        rows.append(torch.cat([_contract(j1, j2, contraction) for j2 in columns], dim=1))
    return NTKGram(torch.cat(rows, dim=0), contraction)


def _target_kernel(y: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    if y.ndim == 1 and not torch.is_floating_point(y):
        y = torch.nn.functional.one_hot(y, int(y.max()) + 1)
    y = y.reshape(n, -1).to(dtype)
    return y @ y.T


def _center(k: Tensor) -> Tensor:
    return k - k.mean(dim=0, keepdim=True) - k.mean(dim=1, keepdim=True) + k.mean()


def kernel_alignment(k: Float[Tensor, "N N"], y: Tensor, centered: bool = True) -> float:
    """Alignment <K, Y Y^T>_F / (|K|_F |Y Y^T|_F) between a Gram matrix and the targets.

    Args:
        k: (N, N) kernel (e.g. `ntk_gram(...).gram` in trace contraction).
        y: (N,) integer labels (one-hot encoded inside) or (N, C) float targets.
        centered: center both kernels with H = I - 11^T/N first (Cortes, Mohri &
            Rostamizadeh 2012, "Algorithms for learning kernels based on centered
            alignment", Def. 1); False gives Cristianini et al. (2002)'s alignment.

    Returns:
        A float in [-1, 1] (in [0, 1] for PSD kernels); 1 for K proportional to YY^T.

    Failure modes:
        Centered alignment is undefined (NaN) when a centered kernel is 0, e.g.
        a single class.
    """
    dtype = torch.float64
    kk = k.to(dtype)
    yy = _target_kernel(y, k.shape[0], dtype)
    if centered:
        kk, yy = _center(kk), _center(yy)
    return float((kk * yy).sum() / (torch.linalg.norm(kk) * torch.linalg.norm(yy)))


def kernel_distance(k1: Float[Tensor, "N N"], k2: Float[Tensor, "N N"]) -> float:
    """Kernel distance 1 - <K1, K2>_F / (|K1|_F |K2|_F) (uncentered).

    Source:
        Fort et al. (2020) "Deep learning versus kernel learning: an empirical
        study of loss landscape geometry and the time evolution of the NTK", eq. (4).

    Failure modes:
        Scale-invariant by design: a kernel that only grows in norm has distance 0.
    """
    a, b = k1.to(torch.float64), k2.to(torch.float64)
    return float(1.0 - (a * b).sum() / (torch.linalg.norm(a) * torch.linalg.norm(b)))
