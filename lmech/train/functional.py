"""K members of any torch.nn.Module architecture, trained in one vectorized step (torch.func).

One job: stack K modules of one structure into (K, ...) tensors and give per-member outputs,
losses and gradients from one `vmap` over `functional_call`. It ignores the update (the stacked
gradients go to `lmech.train.optim.optimizer_step`), schedules, data and what is measured.

Member k of an ensemble computes what module k alone computes, the same operations in possibly
another summation order, so the two agree to rounding (tests/train/test_functional.py trains
MLP, CNN, residual, transformer and GRU members with optimizer_step and compares each with
torch.optim on the member alone, in float64). Members are independent: a member's numbers do
not depend on which others share its ensemble beyond rounding. Exceptions:
- Dropout (train mode): each member draws its own masks (vmap randomness="different") from
  `generator_seed`, so a member alone and inside an ensemble agree in distribution, not bit for
  bit; the draws also depend on `chunk_members`. The caller's global RNG is left as it was.
- Running statistics (BatchNorm, InstanceNorm with track_running_stats=True) are refused: a
  forward that updates buffers in place is not a function of (params, x). BatchNorm built with
  track_running_stats=False (batch statistics in train and eval) is a pure function and is
  supported: each member normalises with its own batch statistics, as alone
  (torch.func docs, "Patching Batch Norm").
- Ops without a vmap batching rule (nn.GRU/nn.LSTM's fused kernels) are refused with their
  name; `chunk_members=1` then runs the members one at a time without vmap (no speed-up).
- Parameters a member's loss does not use get zero gradients (torch.optim would skip them, so
  weight decay differs for them).

Cost: about K times one member's FLOPs in one set of op dispatches per chunk; speed-ups over a
loop of nn.Modules and what limits them are in bench/functional_ensemble.py.
"""

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.func import functional_call, vmap

from lmech.errors import InputError
from lmech.instruments.losses import named_loss

__all__ = ["StackedModel", "stack_members", "losses_and_grads", "clip_grad_norm_per_member",
           "per_member_grad_norm"]


@dataclass(frozen=True)
class StackedModel:
    """K members of one architecture as stacked tensors over a stateless copy of the structure.

    Attributes:
        base: the structure of member 0 on the meta device (holds no values; never called
            directly). Its train/eval flags are the members' (dropout active in train mode).
        params: {name: (K, ...)} leaf tensors, requires_grad=True, one per trainable parameter
            (tied parameters appear once, under their first name). Update them in place, e.g.
            with `lmech.train.optim.optimizer_step`.
        buffers: {name: (K, ...)} the members' buffers and frozen (requires_grad=False)
            parameters, passed to every forward as constants.
    """

    base: nn.Module
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]

    @property
    def members(self) -> int:
        return next(iter({**self.params, **self.buffers}.values())).shape[0]

    def forward(self, params: dict[str, Tensor], x: Tensor, *, per_member_data: bool = False,
                generator_seed: int | None = None, chunk_members: int | None = None) -> Tensor:
        """Every member's output: x shared (N, ...) or, with per_member_data, (K, N, ...) -> (K, N, ...).

        x may be float or int64 (tokens). params: {name: (K, ...)}, usually `self.params`; under
        the caller's grad mode (wrap in torch.no_grad() to keep no graph). generator_seed:
        needed when the model draws random numbers (dropout in train mode); members draw
        independently. chunk_members as in `losses_and_grads`.
        """
        return _run(self, params, x, None, None, per_member_data, generator_seed, chunk_members, grads=False)[0]


def _meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters and buffers live on the meta device, ties preserved."""
    memo: dict[int, object] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to("meta"), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = b.detach().to("meta")
    return copy.deepcopy(module, memo)


def _refuse_running_statistics(module: nn.Module) -> None:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.modules.batchnorm._NormBase) and sub.track_running_stats:
            where = f"model.{name}" if name else "model"
            raise InputError(
                f"{where} is {type(sub).__name__} with running statistics: ensembles keep no state that a "
                f"forward updates; build it with track_running_stats=False (batch statistics always) or use "
                f"LayerNorm/GroupNorm")


def _check_same_structure(modules: Sequence[nn.Module]) -> None:
    first = modules[0]
    shapes = {n: (t.shape, t.dtype, t.device, t.requires_grad)
              for n, t in [*first.named_parameters(), *first.named_buffers()]}
    modes = [(n, m.training) for n, m in first.named_modules()]
    for k, module in enumerate(modules[1:], start=1):
        other = {n: (t.shape, t.dtype, t.device, t.requires_grad)
                 for n, t in [*module.named_parameters(), *module.named_buffers()]}
        if other != shapes:
            diff = sorted(set(other.items()) ^ set(shapes.items()))[0][0]
            raise InputError(f"member {k} differs from member 0 at '{diff}' (name, shape, dtype, device or "
                             f"requires_grad); an ensemble needs modules of one structure")
        if [(n, m.training) for n, m in module.named_modules()] != modes:
            raise InputError(f"member {k} differs from member 0 in its modules or their train/eval mode")


def stack_members(modules: Sequence[nn.Module]) -> StackedModel:
    """Stack K modules of identical structure (K >= 1) into a StackedModel; the modules are left as
    they were (values copied, nothing attached).

    Raises:
        InputError: no modules; members that differ in names, shapes, dtypes, devices, frozen
            parameters or train/eval mode; a module with running statistics (BatchNorm); a
            parameter not yet initialised (lazy modules).
    """
    if len(modules) == 0:
        raise InputError("stack_members needs at least one module")
    first = modules[0]
    for name, p in first.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise InputError(f"model parameter '{name}' is not initialised yet (a lazy module): run one "
                             f"forward before stacking")
    _refuse_running_statistics(first)
    _check_same_structure(modules)
    members = [dict(m.named_parameters()) for m in modules]
    member_buffers = [dict(m.named_buffers()) for m in modules]
    params: dict[str, Tensor] = {}
    buffers: dict[str, Tensor] = {}
    with torch.no_grad():
        for name, p in first.named_parameters():
            stacked = torch.stack([m[name].detach() for m in members])
            if p.requires_grad:
                params[name] = stacked.requires_grad_(True)
            else:
                buffers[name] = stacked
        for name in member_buffers[0]:
            buffers[name] = torch.stack([b[name].detach() for b in member_buffers])
    return StackedModel(base=_meta_copy(first), params=params, buffers=buffers)


def _chunks(k: int, chunk_members: int | None) -> list[slice]:
    if chunk_members is not None and chunk_members < 1:
        raise InputError(f"chunk_members must be a positive member count; got {chunk_members}")
    size = k if chunk_members is None else min(chunk_members, k)
    return [slice(start, min(start + size, k)) for start in range(0, k, size)]


_DRAWS = ("the model draws random numbers (dropout in train mode?): pass generator_seed= so each member draws "
          "its own, reproducibly, or put the model in eval mode")


def _vmap_error(error: RuntimeError) -> InputError | None:
    """The user-facing meaning of a vmap failure, or None for anything else (a bug: re-raised)."""
    text = str(error)
    if "randomness" in text and "vmap" in text:
        return InputError(_DRAWS)
    if text.startswith("Batching rule not implemented for"):
        op = text.removeprefix("Batching rule not implemented for ").split(".")[0].split(";")[0]
        return InputError(f"the model uses {op}, which torch.func.vmap cannot batch over members: write it "
                          f"from batchable ops (e.g. nn.GRUCell-style nn.Linear gates) or pass chunk_members=1 "
                          f"(members one at a time, no speed-up)")
    return None


def _generator(device: torch.device) -> torch.Generator:
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator


@contextlib.contextmanager
def _seeded_rng(device: torch.device, seed: int | None):
    """Inside: the default generator of `device`, seeded with `seed` unless None; after: the
    caller's state put back (fork_rng), whatever the model drew.

    vmap's randomness="different" draws from the global generator and takes no Generator argument.
    Only that device's generator is seeded (torch.manual_seed would also seed every CUDA device,
    lazily, past the restore).
    """
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        if seed is not None:
            _generator(device).manual_seed(seed)
        yield


def _call_chunk(batched, member, p, b, xs, ys, unbatched: bool, seeded: bool) -> Tensor:
    """One chunk's outputs (or losses): vmapped, or (unbatched) its single member without vmap."""
    if unbatched:
        generator = _generator(next(iter({**p, **b}.values())).device)
        before = None if seeded else generator.get_state()
        one = member({n: v[0] for n, v in p.items()}, {n: v[0] for n, v in b.items()}, xs, ys)
        if before is not None and not torch.equal(generator.get_state(), before):
            raise InputError(_DRAWS)  # without vmap nothing refuses the draw: caught here, as vmap would
        return one.unsqueeze(0)
    try:
        return batched(p, b, xs, ys)
    except RuntimeError as error:
        meaning = _vmap_error(error)
        if meaning is None:
            raise
        raise meaning from None


def _run(stacked: StackedModel, params: dict[str, Tensor], x: Tensor, y: Tensor | None, loss_name: str | None,
         per_member_data: bool, generator_seed: int | None, chunk_members: int | None, grads: bool):
    """Outputs (K, N, ...) or, with a loss, (losses (K,), grads) chunk by chunk."""
    base, buffers = stacked.base, stacked.buffers
    names = list(params)
    k = next(iter({**params, **buffers}.values())).shape[0]
    if per_member_data and (x.shape[0] != k or (y is not None and y.shape[0] != k)):
        raise InputError(f"per-member data needs a leading axis of {k} members; x has shape {tuple(x.shape)}"
                         + ("" if y is None else f", y {tuple(y.shape)}"))
    loss = named_loss(loss_name) if loss_name is not None else None

    def member(p, b, xk, yk):
        out = functional_call(base, (p, b), (xk,))
        return out if loss is None else loss(out, yk)

    data_dim = 0 if per_member_data else None
    batched = vmap(member, in_dims=(0, 0, data_dim, data_dim if y is not None else None),
                   randomness="error" if generator_seed is None else "different")
    versions = {n: b._version for n, b in buffers.items()}
    pieces, grad_pieces = [], []
    with _seeded_rng(next(iter({**params, **buffers}.values())).device, generator_seed):
        for part in _chunks(k, chunk_members):
            p = {n: v[part] for n, v in params.items()}
            b = {n: v[part] for n, v in buffers.items()}
            unbatched = chunk_members == 1  # one member without vmap: its own slice, no K axis
            index = part.start if unbatched else part
            xs = x[index] if per_member_data else x
            ys = y[index] if per_member_data and y is not None else y
            with torch.enable_grad() if grads else contextlib.nullcontext():
                out = _call_chunk(batched, member, p, b, xs, ys, unbatched, generator_seed is not None)
                if grads:
                    grad_pieces.append(torch.autograd.grad(out.sum(), [p[n] for n in names], allow_unused=True,
                                                           materialize_grads=True))
                    out = out.detach()
            pieces.append(out)
    changed = [n for n, b in buffers.items() if b._version != versions[n]]
    if changed:
        raise InputError(f"the model's forward changed buffer '{changed[0]}' in place; an ensemble needs a forward "
                         f"that is a function of (parameters, buffers, input)")
    outputs = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    if not grads:
        return (outputs,)
    if len(grad_pieces) == 1:
        return outputs, dict(zip(names, grad_pieces[0]))
    return outputs, {n: torch.cat([piece[i] for piece in grad_pieces]) for i, n in enumerate(names)}


def losses_and_grads(stacked: StackedModel, x: Tensor, y: Tensor, loss_name: str, *,
                     params: dict[str, Tensor] | None = None, per_member_data: bool = False,
                     generator_seed: int | None = None,
                     chunk_members: int | None = None) -> tuple[Float[Tensor, " K"], dict[str, Tensor]]:
    """Each member's mean loss on (x, y) and its gradient with respect to its own parameters.

    Args:
        stacked: from `stack_members`. params: {name: (K, ...)}, default `stacked.params`.
        x: shared inputs (N, ...) float or int64, or (K, N, ...) with per_member_data.
        y: targets, shared or per member exactly when x is; (N, C) float for "half_sse"/"mse",
            (N,) or (N, T) int64 for "cross_entropy" over outputs (N, C) or (N, T, V), targets
            -100 left out (`lmech.instruments.losses.named_loss` semantics).
        loss_name: "half_sse", "mse" or "cross_entropy".
        generator_seed: seeds the members' random draws (dropout); required when the model draws.
        chunk_members: members per vmap call (default all K): bounds the activations held at
            once; 1 runs members one at a time without vmap (for ops vmap cannot batch).

    Returns:
        losses (K,) detached, and {name: (K, ...)} gradients of member k's loss in slice k
        (unused parameters get zeros, where torch.optim would skip them).

    Algorithm: vmap over members of functional_call + the single-member loss, one reverse pass
    (autograd) per chunk through the batched graph: about K times one member's forward and
    backward FLOPs, with one set of op dispatches per chunk instead of per member.
    """
    losses, grads = _run(stacked, stacked.params if params is None else params, x, y, loss_name, per_member_data,
                         generator_seed, chunk_members, grads=True)
    return losses, grads


def per_member_grad_norm(grads: dict[str, Tensor]) -> Float[Tensor, " K"]:
    """Each member's global 2-norm over all its gradients: {name: (K, ...)} -> (K,)."""
    squares = [g.flatten(1).pow(2).sum(1) for g in grads.values()]
    return torch.stack(squares).sum(0).sqrt()


def clip_grad_norm_per_member(grads: dict[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """Member by member, torch.nn.utils.clip_grad_norm_(max_norm) on its gradients: new tensors.

    Member k's gradients are multiplied by min(1, max_norm / (norm_k + 1e-6)), norm_k its global
    2-norm (`per_member_grad_norm`); a non-finite norm propagates as in torch (no error).
    """
    norms = per_member_grad_norm(grads)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {n: g * scale.view(-1, *([1] * (g.dim() - 1))).to(g.dtype) for n, g in grads.items()}
