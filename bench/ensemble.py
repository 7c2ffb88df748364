"""Ensemble trainer vs a plain sequential PyTorch loop, measured in the same process.

Two regimes (issue #2):
  microcosm     MLP 64-32-32-10 on digits, minibatch 32, 2,000 SGD steps (overhead-bound)
  compute-bound MLP 64-128-128-10, full batch (1,797), 500 SGD steps

For K = 8, 64, 256 runs (different seeds), the ensemble trains all K at once; the
baseline trains K ordinary nn.Sequential models one after another with torch.optim.SGD,
from the same initial weights and on the same minibatches, and the final weights are
checked to agree. The sequential cost is linear in K, so for large K the baseline
trains a sample of models (--baseline-models, default 8) and its time is scaled by
K / sample; every sampled model is checked against its ensemble twin. Prints one line
per (regime, K) with `speed-up: N.Nx` and the ensemble's achieved GFLOP/s beside this
machine's fp32 matmul peak, measured here with the same thread count.

Run: make bench-ensemble [ARGS="--ks 8,64 --steps-scale 0.1"]  (the defaults, K up to 256, run for many minutes on 2 cores)
 or: .venv/bin/python bench/ensemble.py [--threads 2] [--ks 8,64,256] [--steps-scale 1.0]
"""

import argparse
import math
import time

import torch

from lmech.seeding import generator
from lmech.spec import ModelSpec, ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.digits import DigitsSpec
from lmech.train import build_ensemble, train_ensemble

REGIMES = {
    "microcosm": dict(width=32, batch_size=32, steps=2000, lr=0.05),
    "compute-bound": dict(width=128, batch_size=None, steps=500, lr=0.05),
}


def matmul_peak(threads: int, size: int = 1536, repeats: int = 8) -> float:
    """Best-of fp32 GFLOP/s of a size x size matmul with the given thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def specs_for(regime: dict, k: int, steps: int) -> list[RunSpec]:
    return [RunSpec(task=DigitsSpec(test_fraction=0.0), model=ModelSpec(width=regime["width"], depth=2),
                    optimizer=OptimizerSpec(name="sgd", lr=regime["lr"], batch_size=regime["batch_size"]),
                    steps=steps, seed=seed, observe={}) for seed in range(k)]


def flops_per_step(sizes: list[int], batch: int) -> float:
    """Forward 2·B·Σ fan_in·fan_out, weight gradients the same, input gradients for all but layer 0."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * batch * (2 * sum(macs) + sum(macs[1:]))


def sequential(specs: list[RunSpec], initial: dict[str, torch.Tensor], x, y, batch_size) -> tuple[float, list]:
    """Train each spec as a plain nn.Sequential with torch.optim.SGD; return (seconds, final weights)."""
    finals, elapsed = [], 0.0
    n = x.shape[0]
    for k, spec in enumerate(specs):
        layers = []
        for index in range(3):
            w = initial[f"W{index}"][k]
            linear = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                linear.weight.copy_(w.T)
                linear.bias.copy_(initial[f"b{index}"][k, 0])
            layers += [linear, torch.nn.ReLU()] if index < 2 else [linear]
        model = torch.nn.Sequential(*layers)
        optimizer = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr)
        g = generator(spec.seed, "minibatch-order")
        per_epoch = max(n // batch_size, 1) if batch_size else 1
        start = time.perf_counter()
        for step in range(spec.steps):
            if batch_size:
                if step % per_epoch == 0:
                    order = torch.randperm(n, generator=g)
                index = order[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
                xb, yb = x[index], y[index]
            else:
                xb, yb = x, y
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        elapsed += time.perf_counter() - start
        finals.append([p.detach().clone() for p in model.parameters()])
    return elapsed, finals


def agree(ensemble_params: dict[str, torch.Tensor], sequential_params: list[torch.Tensor]) -> float:
    """Largest relative difference between an ensemble member's weights and its sequential twin."""
    worst = 0.0
    for index in range(3):
        w, b = sequential_params[2 * index], sequential_params[2 * index + 1]
        for mine, theirs in ((ensemble_params[f"W{index}"], w.T), (ensemble_params[f"b{index}"][0], b)):
            worst = max(worst, ((mine - theirs).norm() / theirs.norm().clamp_min(1e-12)).item())
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ks", default="8,64,256")
    parser.add_argument("--regimes", default="microcosm,compute-bound")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="shorten both sides alike (ratios unchanged)")
    parser.add_argument("--baseline-models", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # first use imports torch._dynamo (seconds)
    print(f"fp32 matmul peak here: {peak:.0f} GFLOP/s with {args.threads} threads")
    for name in args.regimes.split(","):
        regime = REGIMES[name]
        steps = max(1, int(regime["steps"] * args.steps_scale))
        for k in (int(v) for v in args.ks.split(",")):
            specs = specs_for(regime, k, steps)
            state = build_ensemble(specs)
            initial = {n: p.detach().clone() for n, p in state.params.items()}
            start = time.perf_counter()
            results = train_ensemble(specs)
            ensemble_seconds = time.perf_counter() - start
            sample = specs[: min(k, args.baseline_models)]
            seq_seconds, finals = sequential(sample, initial, state.x_train, state.y_train, regime["batch_size"])
            seq_seconds *= k / len(sample)
            error = max(agree(results[i].final_params, finals[i]) for i in range(len(sample)))
            batch = regime["batch_size"] or state.x_train.shape[0]
            flops = flops_per_step([64, regime["width"], regime["width"], 10], batch) * steps * k
            print(f"{name:13s} K={k:<4d} ensemble {ensemble_seconds:7.2f} s  sequential {seq_seconds:7.2f} s"
                  f"{' (scaled from ' + str(len(sample)) + ')' if len(sample) < k else ''}  "
                  f"speed-up: {seq_seconds / ensemble_seconds:.1f}x  "
                  f"{flops / ensemble_seconds / 1e9:.1f} GFLOP/s = {100 * flops / ensemble_seconds / 1e9 / peak:.0f}% "
                  f"of peak {peak:.0f}  (max rel. weight difference {error:.1e})", flush=True)


if __name__ == "__main__":
    main()
