"""Benchmark: the empirical NTK Gram matrix by lmech vs per-sample gradient loops, same process.

Setting (issue #3): MLP 64 -> 128 -> 128 -> 10 (ReLU, 26k parameters, seeded default
init), the first 256 standardized digits, the 256 x 256 eNTK traced over the 10 logits.

Methods, each timed as the median of alternating rounds (the machine is shared):
  loop          one autograd.grad per (sample, logit): 2,560 gradients -> J (N, C, P),
                then sum_c J_c J_c^T (the baseline every speed-up is relative to);
  vmap(jacrev)  torch.func's per-sample Jacobians of the whole batch at once, then the
                same contraction (unchunked: memory N * C * P floats);
  lmech jacobian  `ntk_gram(method="jacobian")`, the path for any module: vmap(jacrev) in
                chunks of chunk_size samples (default 256; memory bounded by chunk_size * C * P floats);
  lmech structured  `ntk_gram()` on this nn.Sequential takes the layer-wise path (Novak
                et al. 2022 Sec. 4): per Linear layer (A A^T + 1) o (cotangent Gram).
Every kernel is checked against the loop's (relative Frobenius error printed).
Prints `speed-up: N.Nx` against the loop for each method, and lmech jacobian against
vmap(jacrev).

Run: make bench-ntk [ARGS="--rounds 5"]
 or: .venv/bin/python bench/ntk.py [--rounds 5] [--threads 1] [--n 256]
"""

import argparse
import statistics
import time

import torch
from threadpoolctl import threadpool_limits
from torch.func import functional_call, jacrev, vmap

from lmech.instruments.ntk import ntk_gram
from workloads import digits, relu_mlp


def loop_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-logit gradients by autograd, then sum_c J_c J_c^T."""
    params = list(model.parameters())
    rows = []
    for i in range(x.shape[0]):
        out = model(x[i:i + 1])[0]
        grads = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(out[c], params, retain_graph=True)])
                 for c in range(out.shape[0])]
        rows.append(torch.stack(grads))
    jac = torch.stack(rows)  # (N, C, P)
    return torch.einsum("ncp,mcp->nm", jac, jac)


def vmap_jacrev_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torch.func per-sample Jacobians of the whole batch in one vmap, then the contraction."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def f(p, xi):
        return functional_call(model, p, (xi[None],))[0]

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    flat = torch.cat([j.reshape(x.shape[0], j.shape[1], -1) for j in jac.values()], dim=2)
    return torch.einsum("ncp,mcp->nm", flat, flat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (shared machine: 1)")
    parser.add_argument("--n", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    model, x = relu_mlp([64, 128, 128, 10], seed=0), digits()[0][:args.n]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{sum(p.numel() for p in model.parameters())} parameters, {x.shape[0]} inputs, trace over 10 logits")
    methods = {
        "loop": lambda: loop_ntk(model, x),
        "vmap(jacrev)": lambda: vmap_jacrev_ntk(model, x),
        "lmech jacobian": lambda: ntk_gram(model, x, method="jacobian").gram,
        "lmech structured": lambda: ntk_gram(model, x).gram,
    }
    times = {name: [] for name in methods}
    kernels = {}
    for name, run in methods.items():  # warm-up (imports, first-call compilation of vmap)
        kernels[name] = run()
    for r in range(args.rounds):
        for name in (methods if r % 2 == 0 else reversed(methods)):
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)
    reference = kernels["loop"]
    median = {name: statistics.median(t) for name, t in times.items()}
    for name in methods:
        error = float(torch.linalg.norm(kernels[name] - reference) / torch.linalg.norm(reference))
        print(f"{name:<17} {median[name] * 1e3:9.2f} ms  (rel. error vs loop {error:.1e})  "
              f"speed-up: {median['loop'] / median[name]:.1f}x")
    print(f"lmech jacobian vs vmap(jacrev): speed-up: {median['vmap(jacrev)'] / median['lmech jacobian']:.1f}x")


if __name__ == "__main__":
    main()
