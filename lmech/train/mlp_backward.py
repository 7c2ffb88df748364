"""Per-member losses and gradients of the stacked MLP for inputs shared by all members, by hand.

One job: the trainer's fast path for the common full-batch case (x shared,
relu or linear, half_sse or cross-entropy): a hand-derived backward pass with the
biases folded into the GEMMs, in-place activations and buffers reused between
steps, chunks of members spread over worker threads. It ignores every other
case (per-member data, other activations), which autograd handles in
`lmech.train.loop`; tests check it against autograd.
"""

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from jaxtyping import Float
from torch import Tensor

from lmech.models.mlp import ModelPlan

__all__ = ["supports_manual_backward", "losses_and_grads_shared"]


def supports_manual_backward(plan: ModelPlan, x: Tensor, loss: str) -> bool:
    """Whether `losses_and_grads_shared` handles this case: float32 x on the CPU (its worker
    threads are CPU threads) shared by all members (N, D), activation relu or linear, loss
    half_sse or cross_entropy."""
    return (x.dim() == 2 and x.dtype == torch.float32 and x.device.type == "cpu"
            and plan.activation in ("relu", "linear")
            and loss in ("half_sse", "cross_entropy"))


_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of `workers` threads whose torch ops each run on one thread
    (torch.set_num_threads is per OpenMP thread; the global default is restored after)."""
    key = (os.getpid(), workers)  # a forked child needs its own threads
    if key not in _pools:
        threads = torch.get_num_threads()
        barrier = threading.Barrier(workers)

        def start() -> None:
            torch.get_num_threads()  # the thread's lazy init (from the global default) happens first
            torch.set_num_threads(1)
            barrier.wait()

        pool = ThreadPoolExecutor(workers, thread_name_prefix="lmech-member")
        for future in [pool.submit(start) for _ in range(workers)]:
            future.result()
        torch.set_num_threads(threads)
        _pools[key] = pool
    return _pools[key]


class _Workspace:
    """Buffers reused from call to call (pass the same dict each step): allocating them afresh
    would page-fault large blocks in on every step."""

    def __init__(self, store: dict | None):
        self.store = {} if store is None else store

    def get(self, key, shape: tuple[int, ...], fill: Callable[[Tensor], None] | None = None) -> Tensor:
        value = self.store.get(key)
        if value is None or tuple(value.shape) != tuple(shape):
            value = torch.empty(shape)
            if fill is not None:
                fill(value)
            self.store[key] = value
        return value


def _prepare(plan: ModelPlan, params: dict[str, Tensor], output_multiplier: Tensor | None,
             space: _Workspace) -> tuple[list[Tensor], list[Tensor | None], Tensor | None]:
    """All K members' weights in the layouts the hand-derived step multiplies by: A_l
    (K, fan_in [+1], fan_out [+1]) for the hidden layers, (scaled W_l)^T (K, fan_out, fan_in)
    contiguous for l >= 1, and the last layer's output multiplier * b as (K, C, 1)."""
    last = len(plan.layers) - 1
    hidden, transposed, last_bias = [], [None] * (last + 1), None
    for index, layer in enumerate(plan.layers[:last]):
        weight = params[f"W{index}"].detach()
        k, fan_in, fan_out = weight.shape
        const = plan.bias and index + 1 < last  # the next layer is hidden too: carry a constant-1 unit

        def fill(a: Tensor, fan_in=fan_in, fan_out=fan_out, const=const) -> None:
            a.zero_()
            if const:
                a[:, fan_in, fan_out] = 1.0

        a = space.get(("A", index), (k, fan_in + plan.bias, fan_out + const), fill)
        if layer.multiplier == 1.0:
            a[:, :fan_in, :fan_out] = weight
        else:
            torch.mul(weight, layer.multiplier, out=a[:, :fan_in, :fan_out])
        if plan.bias:
            a[:, fan_in:, :fan_out] = params[f"b{index}"].detach()
        hidden.append(a)
        if index > 0:
            t = space.get(("T", index), (k, fan_out, fan_in))
            transposed[index] = t.copy_(a[:, :fan_in, :fan_out].transpose(1, 2))
    layer = plan.layers[last]
    weight = params[f"W{last}"].detach()
    scale = layer.multiplier if output_multiplier is None else output_multiplier.view(-1, 1, 1) * layer.multiplier
    if isinstance(scale, float) and scale == 1.0:
        transposed[last] = weight.transpose(1, 2).contiguous()
    else:
        transposed[last] = (weight * scale).transpose(1, 2).contiguous()
    if plan.bias:
        bias = params[f"b{last}"].detach()
        if output_multiplier is not None:
            bias = bias * output_multiplier.view(-1, 1, 1)
        last_bias = bias.transpose(1, 2).contiguous()
    return hidden, transposed, last_bias


def losses_and_grads_shared(
    plan: ModelPlan,
    params: dict[str, Tensor],
    x: Float[Tensor, "N D"],
    y: Tensor,
    loss: str,
    output_multiplier: Float[Tensor, " K"] | None,
    chunks: list[slice],
    workers: int = 1,
    workspace: dict | None = None,
) -> tuple[Float[Tensor, " K"], dict[str, Tensor]]:
    """Per-member losses (mean over examples) and the gradients of their sum, for x shared by
    all members, by a hand-derived backward pass (no autograd), one chunk of members at a time.

    Algorithm (a chunk of m members; h_0 = [x, 1] when the model has biases, else x):
      Hidden layer l: h_{l+1} = phi(h_l @ A_l), one batched GEMM, with
        A_l = [[mult_l W_l, 0], [b_l, 1]]: the bias is the row that multiplies h_l's constant-1
        column, and the extra output column gives h_{l+1} its own constant-1 column (phi(1) = 1
        for relu and linear; omitted before the last layer), so neither the bias add nor the
        bias gradient is a separate pass over the activations.
      Last layer, transposed: f^T (m, C, N) = V^T h_L^T + c, V = om * mult W, c = om * b (om:
        the member's output multiplier), so the softmax runs along a contiguous axis.
      Loss: cross_entropy -mean_n log softmax(f_n)[y_n], df = (softmax(f) - onehot(y)) / N;
        half_sse 0.5 * mean_n |f_n - y_n|^2, df = (f - y) / N.
      Backward: dV^T = df^T @ h_L (dW = om * mult * dV; db = om * sum_n df); dh_L = df @ V^T;
        then for each hidden layer, from the top: dz = dh * phi'(z) (relu: zeroed where
        h <= 0, in place); dA_l = h_l^T @ dz holds dW_l / mult_l (first rows) and db_l (last
        row); dh_l = dz @ (mult_l W_l)^T by a contiguous transposed copy (none for layer 0).
    Members are independent, so with workers > 1 each of `workers` threads (one op thread
    each, no barriers between them) takes every workers-th chunk. A_l and the transposes are
    built once per call; activations live in per-thread buffers every chunk reuses, kept in
    `workspace` (a dict the caller passes each step) along with the returned gradients, which
    are therefore only valid until the next call with the same workspace.
    FLOPs: those of autograd, 2*K*N*(2 sum_l fan_in*fan_out - D*H_1), plus the constant-1 units.
    Returns (losses (K,), {name: gradient (K, ...)}); gradients may be non-contiguous views.
    """
    space = _Workspace(workspace)
    n, _ = x.shape
    last = len(plan.layers) - 1
    om = None if output_multiplier is None or bool((output_multiplier == 1).all()) else output_multiplier
    hidden, transposed, last_bias = _prepare(plan, params, om, space)
    k = params["W0"].shape[0]
    h0 = torch.cat([x, x.new_ones(n, 1)], 1) if plan.bias and last > 0 else x
    classes = plan.layers[-1].fan_out
    if loss == "cross_entropy":
        labels = y.view(1, 1, n)
        target = torch.zeros(classes, n).scatter_(0, y.view(1, n), 1.0)  # onehot^T (C, N)
    else:
        target = y.t()  # (C, N)
    hidden_grads = [space.get(("dA", i), (k, a.shape[1], plan.layers[i].fan_out)) for i, a in enumerate(hidden)]
    last_grad_t = space.get("dV", (k, classes, plan.layers[last].fan_in))
    last_bias_grad = space.get("dc", (k, classes, 1))
    losses = torch.empty(k)
    widest = max([layer.fan_in for layer in plan.layers[1:]], default=1)

    def run(worker: int, parts: list[slice]) -> None:
        size = max(part.stop - part.start for part in parts) * n
        outs = [space.get(("h", worker, i), (size * a.shape[2],)) for i, a in enumerate(hidden)]  # h_1 .. h_L
        grad_buffers = [space.get(("dh", worker, i), (size * widest,)) for i in range(2)]
        for part in parts:
            m = part.stop - part.start
            h = h0.expand(m, *h0.shape)
            inputs = [h]
            for index, a in enumerate(hidden):
                width = a.shape[2]
                h = torch.bmm(h, a[part], out=outs[index][:m * n * width].view(m, n, width))
                if plan.activation == "relu":
                    h.relu_()
                inputs.append(h)
            weight_t = transposed[last][part]  # (m, C, H_L)
            f = torch.bmm(weight_t, h.transpose(1, 2))  # (m, C, N)
            if last_bias is not None:
                f += last_bias[part]
            if loss == "cross_entropy":
                log_p = torch.log_softmax(f, 1)
                losses[part] = log_p.gather(1, labels.expand(m, 1, n)).mean((1, 2)).neg_()
                df = log_p.exp_().sub_(target).mul_(1.0 / n)
            else:
                df = f.sub_(target)
                losses[part] = df.square().sum(1).mean(1).mul_(0.5)
                df.mul_(1.0 / n)
            torch.bmm(df, h, out=last_grad_t[part])
            if plan.bias:
                torch.sum(df, 2, keepdim=True, out=last_bias_grad[part])
            if last == 0:
                continue
            width = weight_t.shape[2]
            dh = torch.bmm(df.transpose(1, 2), weight_t, out=grad_buffers[0][:m * n * width].view(m, n, width))
            for index in range(last - 1, -1, -1):
                if plan.activation == "relu":
                    out = inputs[index + 1][..., :plan.layers[index].fan_out]
                    torch.ops.aten.threshold_backward.grad_input(dh, out, 0, grad_input=dh)
                torch.bmm(inputs[index].transpose(1, 2), dh, out=hidden_grads[index][part])
                if index > 0:
                    fan_in = plan.layers[index].fan_in
                    buffer = grad_buffers[(last - index) % 2][:m * n * fan_in].view(m, n, fan_in)
                    dh = torch.bmm(dh, transposed[index][part], out=buffer)

    workers = min(workers, len(chunks))
    if workers <= 1:
        run(0, chunks)
    else:
        list(_pool(workers).map(run, range(workers), [chunks[w::workers] for w in range(workers)]))
    grads = {}
    for index, layer in enumerate(plan.layers):
        if index == last:
            scale = layer.multiplier if om is None else om.view(-1, 1, 1) * layer.multiplier
            weight_grad = last_grad_t.transpose(1, 2)
            bias_grad = last_bias_grad.transpose(1, 2) if om is None else \
                last_bias_grad.transpose(1, 2) * om.view(-1, 1, 1)
        else:
            scale = layer.multiplier
            weight_grad = hidden_grads[index][:, :layer.fan_in]
            bias_grad = hidden_grads[index][:, layer.fan_in:]
        if not (isinstance(scale, float) and scale == 1.0):
            weight_grad = weight_grad * scale
        grads[f"W{index}"] = weight_grad
        if plan.bias:
            grads[f"b{index}"] = bias_grad
    return losses, grads
