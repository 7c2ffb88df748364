"""The training loop: K stacked models trained in one vectorized step; one model is K = 1.

Ignores what is measured (observables arrive as a callback) and where results go
(the engine stores them). Members may differ in seed, data seed, learning rate,
weight decay, momentum, init scale and output multiplier; everything else is shared.
"""

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lmech.errors import InputError
from lmech.instruments._state import resolve_device, training_flags
from lmech.models.family import build_model
from lmech.models.family import lr_multipliers as family_lr_multipliers
from lmech.models.mlp import MemberModule, ModelPlan, forward, init_params, plan_model
from lmech.train.mlp_backward import losses_and_grads_shared, supports_manual_backward
from lmech.seeding import child_seed, generator
from lmech.spec import RunSpec, group_key
from lmech.tasks import Task, make_task
from lmech.train.losses import per_member_loss
from lmech.train.functional import StackedModel, clip_grad_norm_per_member, stack_members
from lmech.train.functional import losses_and_grads as stacked_losses_and_grads
from lmech.train.optim import MemberHyper, evaluation_params, init_optimizer_state, optimizer_step
from lmech.train.optimizers import OptimizerOptions, hidden_matrices
from lmech.train.schedule import lr_factor

__all__ = ["TrainState", "MemberResult", "train_ensemble", "train_run", "build_ensemble", "losses_and_grads",
           "member_chunks", "member_module"]

_MLP_KINDS = ("mlp", "deep_linear")


@dataclass
class TrainState:
    """What an observable may read at an observation step (do not modify).

    Attributes:
        plan: the shared MLP architecture (None for other families, which train through `stacked`).
        params: {name: (K, ...)} current parameters.
        output_multiplier: (K,). x_train: (N, D) shared or (K, N, D); y_train likewise.
        x_test, y_test: as the training set. loss: "half_sse", "mse" or "cross_entropy".
        step: updates taken so far. last_update: {name: (K, ...)} the latest update (zeros at step 0).
        optimizer_state: the optimizer's buffers ({} entries at step 0 are zeros).
        hyper: per-member hyperparameters. lr_multipliers: per-parameter lr multipliers.
        optimizer: "sgd" | "adam" | "adamw". specs: the K run specs. tasks: the K members' tasks.
    """

    plan: ModelPlan | None
    params: dict[str, Tensor]
    output_multiplier: Tensor
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    loss: str
    step: int
    last_update: dict[str, Tensor]
    optimizer_state: dict[str, dict[str, Tensor]]
    hyper: MemberHyper
    lr_multipliers: dict[str, float]
    optimizer: str
    specs: list[RunSpec]
    tasks: list[Task]
    stacked: StackedModel | None = None
    template: torch.nn.Module | None = None

    @property
    def per_member_data(self) -> bool:
        return len(self.tasks) > 1

    def outputs(self, x: Tensor) -> Tensor:
        """Every member's outputs (K, N, ...) on x (shared, or per member when the data are), in eval mode,
        at the point the optimizer is evaluated at (schedule_free_adamw: its average x)."""
        params = evaluation_params(self.optimizer, self.params, self.optimizer_state)
        with torch.no_grad():
            if self.stacked is None:
                return forward(self.plan, params, x, self.output_multiplier)
            with training_flags(self.stacked.base, False):
                return self.stacked.forward(params, x, per_member_data=self.per_member_data)


def member_module(state: TrainState, k: int) -> torch.nn.Module:
    """Member k as an ordinary nn.Module holding a copy of its current parameters (and buffers)."""
    if state.stacked is None:
        return MemberModule(state.plan, state.params, k, float(state.output_multiplier[k]))
    module = copy.deepcopy(state.template)
    targets = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    with torch.no_grad():
        for name, value in {**state.params, **state.stacked.buffers}.items():
            targets[name].copy_(value[k])
    return module


@dataclass
class MemberResult:
    """One member's outcome: rows are (step, name, value); diverged_step is None if it finished."""

    spec: RunSpec
    rows: list[tuple[int, str, float]] = field(default_factory=list)
    diverged_step: int | None = None
    final_params: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    device: str = "cpu"


Observer = Callable[[TrainState], dict[str, Tensor]]


def _stack_data(tasks: list[Task], shared: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if shared:
        t = tasks[0]
        return t.x_train, t.y_train, t.x_test, t.y_test
    return tuple(torch.stack([getattr(t, a) for t in tasks])
                 for a in ("x_train", "y_train", "x_test", "y_test"))


def build_ensemble(specs: list[RunSpec]) -> TrainState:
    """Tasks, plan, initial parameters and optimizer state for specs that share a group key."""
    keys = {group_key(s) for s in specs}
    if len(keys) != 1:
        raise ValueError("an ensemble needs specs that differ only in ensemble scalars")
    first = specs[0]
    data_seeds = [s.data_seed if s.data_seed is not None else s.seed for s in specs]
    shared = len(set(data_seeds)) == 1
    tasks = [make_task(first.task, seed) for seed in (data_seeds[:1] if shared else data_seeds)]
    task = tasks[0]
    loss = first.loss or task.loss
    family = "sgd" if first.optimizer.name == "sgd" else "adam"
    device = resolve_device(first.device)
    stacked = template = None
    if first.model.kind in _MLP_KINDS:
        if task.x_train.dim() != 2 or not task.x_train.is_floating_point():
            raise InputError(f"an {first.model.kind} takes real features (N, D); task {first.task.name} gives "
                             f"{task.x_train.dtype} inputs of shape {tuple(task.x_train.shape)}: use a model kind "
                             "for sequences (transformer, linear_recurrence) or your own factory")
        plan = plan_model(first.model, task.input_dim, task.output_dim, family)
        params = init_params(plan, [s.seed for s in specs], [s.model.init_scale for s in specs],
                             first.model.zero_init_readout)  # drawn on the CPU: the same numbers on any device
        params = {n: p.to(device).requires_grad_(True) for n, p in params.items()}
        multipliers = plan.lr_multipliers()
    else:  # any nn.Module: members built one by one from their own seeds, stacked for torch.func
        plan = None
        shape, vocab = tuple(task.x_train.shape[1:]), getattr(task, "vocab_size", None)
        modules = [build_model(s.model, shape, task.output_dim, vocab, s.seed).to(device) for s in specs]
        _check_outputs(modules[0], task, loss)
        stacked = stack_members(modules)
        params = stacked.params
        multipliers = family_lr_multipliers(first.model, modules[0], family)
        template = modules[0]
    as_tensor = lambda values: torch.tensor(values, dtype=torch.float32, device=device)  # noqa: E731
    hyper = MemberHyper(
        lr=as_tensor([s.optimizer.lr for s in specs]),
        weight_decay=as_tensor([s.optimizer.weight_decay for s in specs]),
        momentum=as_tensor([s.optimizer.momentum for s in specs]),
    )
    x_train, y_train, x_test, y_test = (t.to(device) for t in _stack_data(tasks, shared))
    if loss == "cross_entropy" and y_train.is_floating_point():
        raise InputError("cross_entropy needs integer class labels; this task gives real targets")
    if loss != "cross_entropy" and not y_train.is_floating_point():
        raise InputError(f"loss {loss} needs real-valued targets; task {first.task.name} gives class labels "
                         "(use cross_entropy, or the task's one-hot targets where it has them)")
    return TrainState(
        plan=plan, params=params,
        output_multiplier=as_tensor([getattr(s.model, "output_multiplier", 1.0) for s in specs]),
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, loss=loss, step=0,
        last_update={n: torch.zeros_like(p) for n, p in params.items()},
        optimizer_state=init_optimizer_state(first.optimizer.name, params),
        hyper=hyper, lr_multipliers=multipliers, optimizer=first.optimizer.name,
        specs=list(specs), tasks=tasks, stacked=stacked, template=template,
    )


def _check_outputs(module: torch.nn.Module, task: Task, loss: str) -> None:
    """One forward of member 0 on two examples: a model whose outputs do not fit the task's targets
    (or that cannot run on its inputs) gets one line naming both shapes."""
    from lmech.instruments.losses import named_loss

    device = next(module.parameters(), torch.empty(0)).device
    x, y = task.x_train[:2].to(device), task.y_train[:2].to(device)
    try:
        with torch.no_grad():
            out = module(x)
    except (RuntimeError, IndexError, TypeError, ValueError) as error:
        raise InputError(f"the model cannot run on the task's inputs {tuple(x.shape)} {x.dtype}: "
                         f"{(str(error).splitlines() or [''])[0]}") from None
    if not isinstance(out, Tensor):
        raise InputError(f"the model returned {type(out).__name__}; the trainer needs a tensor of outputs")
    try:
        named_loss(loss)(out, y)
    except (RuntimeError, IndexError) as error:
        raise InputError(f"the model's outputs {tuple(out.shape)} do not fit the task's targets {tuple(y.shape)} "
                         f"under loss {loss}: {(str(error).splitlines() or [''])[0]}") from None


def _order_stream(seed: int, order_seed: int | None, switch: int, n: int, batch: int, steps: int):
    """Yield (B,) index tensors: reshuffle every epoch from `seed`; when order_seed is set, from step
    `switch` (0-based) on, a fresh epoch every n // batch steps from order_seed instead."""
    gen = generator(seed, "minibatch-order")
    per_epoch, start = max(n // batch, 1), 0
    for step in range(steps):
        if order_seed is not None and step == switch:
            gen, start = generator(order_seed, "minibatch-order"), step
        position = (step - start) % per_epoch
        if position == 0:
            order = torch.randperm(n, generator=gen)
        yield order[position * batch:(position + 1) * batch]


def _minibatch_indices(specs: list[RunSpec], n: int, batch: int, steps: int):
    """Yield (K, B) or (B,) index tensors: each member reshuffles every epoch from its own seed (and,
    from step order_switch_step on, from its order_seed when set); (B,) when all members agree."""
    keys = [(s.seed, s.order_seed, s.order_switch_step if s.order_seed is not None else 0) for s in specs]
    distinct = list(dict.fromkeys(keys))
    streams = [_order_stream(*key, n, batch, steps) for key in distinct]
    member_stream = torch.tensor([distinct.index(key) for key in keys])
    for _ in range(steps):
        chunks = torch.stack([next(stream) for stream in streams])
        yield chunks[0] if len(distinct) == 1 else chunks[member_stream]
def _take(x: Tensor, index: Tensor, per_member_data: bool) -> Tensor:
    """Rows `index` ((B,) shared or (K, B) per member) of shared (N, ...) or per-member (K, N, ...) data."""
    if not per_member_data:  # index_select: much cheaper than advanced indexing for tiny batches
        return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])
    if index.dim() == 1:
        return x[:, index]
    return x[torch.arange(x.shape[0]).unsqueeze(1), index]


def _draws(module: torch.nn.Module | None) -> bool:
    """Whether the module draws random numbers in train mode (dropout with p > 0)."""
    return module is not None and any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0
                                      for m in module.modules())


def member_chunks(k: int, floats_per_member: int, chunk_bytes: int, at_least: int = 1) -> list[slice]:
    """Split K members into contiguous slices whose activations (4 bytes a float) fit chunk_bytes,
    and into at least min(at_least, K) slices (one per worker thread)."""
    size = max(1, chunk_bytes // max(4 * floats_per_member, 1))
    size = min(size, -(-k // max(at_least, 1)))
    return [slice(start, min(start + size, k)) for start in range(0, k, size)]


def losses_and_grads(state: TrainState, x: Tensor, y: Tensor, chunks: list[slice] | None = None,
                     workers: int = 1, workspace: dict | None = None,
                     per_member_data: bool | None = None) -> tuple[Tensor, list[Tensor]]:
    """Per-member losses (K,) on (x, y) and the gradients of their sum (one (K, ...) tensor per
    parameter, member k's gradient in slice k; possibly non-contiguous views), computed chunk
    by chunk (default: one chunk).

    x is shared (N, D) or per member (K, N, D); y is per member exactly when x is.
    Shared x with a relu or linear MLP and half_sse or cross_entropy: the hand-derived backward
    (lmech.train.mlp_backward.losses_and_grads_shared), its chunks split over `workers` threads, its
    buffers (and so the gradients) reused through `workspace`; otherwise autograd.
    """
    names = list(state.params)
    if state.stacked is not None:
        seed = child_seed(state.specs[0].seed, f"dropout@{state.step}") if _draws(state.template) else None
        per_member = state.per_member_data if per_member_data is None else per_member_data
        losses, grads = stacked_losses_and_grads(state.stacked, x, y, state.loss, per_member_data=per_member,
                                                 generator_seed=seed)
        return losses, [grads[n] for n in names]
    if supports_manual_backward(state.plan, x, state.loss):
        losses, grads = losses_and_grads_shared(state.plan, state.params, x, y, state.loss, state.output_multiplier,
                                                chunks or [slice(0, state.output_multiplier.shape[0])], workers, workspace)
        return losses, [grads[n] for n in names]
    if chunks is None or len(chunks) == 1:
        losses = per_member_loss(forward(state.plan, state.params, x, state.output_multiplier), y, state.loss)
        return losses, list(torch.autograd.grad(losses.sum(), [state.params[n] for n in names]))
    per_member = x.dim() == 3
    grads = [torch.empty_like(state.params[n]) for n in names]
    losses = torch.empty(state.output_multiplier.shape[0], device=state.output_multiplier.device)
    for part in chunks:
        params = {n: state.params[n][part] for n in names}
        outputs = forward(state.plan, params, x[part] if per_member else x, state.output_multiplier[part])
        chunk_losses = per_member_loss(outputs, y[part] if per_member else y, state.loss)
        for grad, value in zip(grads, torch.autograd.grad(chunk_losses.sum(), [params[n] for n in names])):
            grad[part] = value
        losses[part] = chunk_losses.detach()
    return losses, grads


def _train_ensemble(
    specs: list[RunSpec],
    observe: Observer | None = None,
    observe_steps: set[int] | None = None,
    on_step: Callable[[int], None] | None = None,
    chunk_bytes: int = 8 << 20,
    manual_chunk_bytes: int = 2 << 20,
) -> list[MemberResult]:
    """Train K runs at once; return one MemberResult per spec, in order.

    A member whose training loss becomes NaN or inf is recorded as diverged at that
    step, frozen (lr 0, parameters zeroed) and not observed again; the others go on.
    Cost per step: one stacked forward and backward, about K times one model's FLOPs.
    Members are processed in chunks whose widest activation stays under chunk_bytes: K
    large activations at once would stream through memory and (above glibc's mmap
    threshold) be page-faulted in on every step, which can make the ensemble slower than a
    loop (bench/NOTES.md, `loop.train_ensemble`); chunks keep the step compute-bound. Results
    do not depend on chunking.
    Shared inputs with a relu or linear MLP take the hand-derived step
    (lmech.train.mlp_backward.losses_and_grads_shared) with chunks under manual_chunk_bytes, spread
    over torch.get_num_threads() worker threads (one op thread each) when the step is large.
    """
    start = time.perf_counter()
    state = build_ensemble(specs)
    first = specs[0]
    opt = first.optimizer
    results = [MemberResult(spec=s) for s in specs]
    alive = torch.ones(len(specs), dtype=torch.bool, device=state.output_multiplier.device)
    observe_steps = observe_steps or set()
    n_train = state.x_train.shape[-2]
    full_batch = opt.batch_size is None or opt.batch_size >= n_train
    batches = None if full_batch else _minibatch_indices(specs, n_train, opt.batch_size, first.steps)
    names = list(state.params)
    per_member = len(state.tasks) > 1
    batch = n_train if full_batch else opt.batch_size
    floats = batch * max(layer.fan_out for layer in state.plan.layers) if state.plan is not None else 0
    if state.plan is None:
        workers, chunks = 1, None
    elif supports_manual_backward(state.plan, state.x_train, state.loss):
        # hand-derived step: chunks small enough to stay cache-resident and, when the step is
        # large enough to pay for a thread hand-off, at least one chunk per thread
        big = 4 * floats * len(specs) >= manual_chunk_bytes
        workers = torch.get_num_threads() if big else 1
        chunks = member_chunks(len(specs), floats, min(chunk_bytes, manual_chunk_bytes), workers)
    else:
        workers, chunks = 1, member_chunks(len(specs), floats, chunk_bytes)
    workspace: dict = {}  # the hand-derived step's buffers, reused every step
    options = OptimizerOptions.from_spec(opt)
    network = state.plan if state.plan is not None else state.template
    matrices = hidden_matrices(first.model, network) if opt.name == "muon" else None  # the family's roles

    def record(values: dict[str, Tensor]) -> None:
        for name, value in values.items():
            value = value.detach().reshape(-1).tolist()
            for k, result in enumerate(results):
                if alive[k]:
                    result.rows.append((state.step, name, float(value[k])))

    if observe and 0 in observe_steps:
        record(observe(state))
    for step in range(1, first.steps + 1):
        if full_batch:
            x, y = state.x_train, state.y_train
        else:
            index = next(batches).to(state.x_train.device)  # drawn on the CPU, as on any device
            x, y = _take(state.x_train, index, per_member), _take(state.y_train, index, per_member)
        member_batches = per_member or (not full_batch and index.dim() == 2)  # members draw their own minibatches
        losses, grads = losses_and_grads(state, x, y, chunks, workers, workspace, member_batches)
        if not bool(torch.isfinite(losses).all()):  # frozen members are zeroed, so finite
            finite = torch.isfinite(losses)
            newly = alive & ~finite
            for k in torch.nonzero(newly).flatten().tolist():
                results[k].diverged_step = step - 1
            alive &= finite
            keep = alive.float()
            state.hyper = MemberHyper(state.hyper.lr * keep, state.hyper.weight_decay, state.hyper.momentum)
            grads = [torch.nan_to_num(g) * keep.view(-1, *([1] * (g.dim() - 1))) for g in grads]
            with torch.no_grad():  # zero frozen members' parameters and optimizer buffers
                buffers = [b for group in state.optimizer_state.values() for b in group.values()]
                for p in [*state.params.values(), *buffers]:
                    p.mul_(keep.view(-1, *([1] * (p.dim() - 1)))).nan_to_num_(0.0)
            if not bool(alive.any()):
                break
        if opt.clip_norm is not None:
            grads = list(clip_grad_norm_per_member(dict(zip(names, grads)), opt.clip_norm).values())
        factor = lr_factor(opt.schedule, step - 1, first.steps, opt.warmup_steps)
        state.last_update = optimizer_step(
            opt.name, state.params, dict(zip(names, grads)), state.optimizer_state, state.hyper,
            factor, state.lr_multipliers, step, opt.beta1, opt.beta2, opt.eps, options=options, matrix_params=matrices)
        state.step = step
        if observe and step in observe_steps:
            record(observe(state))
        if on_step is not None:
            on_step(step)
    seconds = time.perf_counter() - start
    final = evaluation_params(opt.name, state.params, state.optimizer_state)  # the point the optimizer is evaluated at
    for k, result in enumerate(results):
        result.final_params = {n: p[k].detach().cpu().clone() for n, p in final.items()}
        result.device = str(state.x_train.device)
        result.seconds = seconds / len(specs)
    return results


def train_ensemble(specs: list[RunSpec], observe: Observer | None = None, observe_steps: set[int] | None = None,
                   on_step: Callable[[int], None] | None = None, **chunking) -> list[MemberResult]:
    """Train K runs at once; return one MemberResult per spec, in order (see `_train_ensemble`).

    Runs with LMECH_THREADS torch and BLAS threads (default 1), the caller's settings restored
    after: microcosm models are too small for intra-op threads, which collapse when another
    process holds a core; parallelism comes from ensembles and worker processes. The same
    default as the `lmech` command, so the Python API trains as fast as the CLI.
    """
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("LMECH_THREADS", "1"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            return _train_ensemble(specs, observe, observe_steps, on_step, **chunking)
    finally:
        torch.set_num_threads(before)


def train_run(spec: RunSpec, observe: Observer | None = None, observe_steps: set[int] | None = None,
              on_step: Callable[[int], None] | None = None) -> MemberResult:
    """Train one model: the ensemble trainer with K = 1 (the same step function)."""
    return train_ensemble([spec], observe, observe_steps, on_step)[0]
