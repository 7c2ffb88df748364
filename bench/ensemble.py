"""Ensemble trainer vs a plain sequential PyTorch loop, measured in the same process.

Regimes (--regimes; the default runs the first two, issue #2):
  microcosm     MLP 64-32-32-10 on digits, minibatch 32, 2,000 SGD steps (overhead-bound)
  compute-bound MLP 64-128-128-10, full batch (1,797), 500 SGD steps
  transformer   lmech transformer (2 blocks, width 64, 4 heads, context 32) on markov_language
                (vocab 64, sequences of 32 tokens), minibatch 16, AdamW (lr 1e-3, weight decay
                0.01), 60 steps; K = 8, 32 by default
  cnn           lmech 1-D CNN (2 convs of 32 channels, kernel 3, max pooling) on mnist1d (N, 40),
                minibatch 32, SGD (lr 0.02, momentum 0.9), 300 steps; K = 8, 32 by default

For K = 8, 64, 256 runs (different seeds), the ensemble trains all K at once; the
baseline trains K ordinary nn.Sequential models one after another with torch.optim.SGD,
from the same initial weights and on the same minibatches, and the final weights are
checked to agree. The sequential cost is linear in K, so for large K the baseline
trains a sample of models (--baseline-models, default 8) and its time is scaled by
K / sample; every sampled model is checked against its ensemble twin. Prints one line
per (regime, K) with `speed-up: N.Nx` and the ensemble's achieved GFLOP/s beside this
machine's fp32 matmul peak, measured here with the same thread count.

The transformer and cnn regimes ("any architecture"): the ensemble side is the public trainer,
train_ensemble(specs) with one RunSpec per member (model kind transformer / cnn, members
differing in seed: initial weights and minibatch order), timed as the whole call (building the
task and the K modules included, observe={}); the baseline builds each member's module with
lmech.models.family.build_model (the same initial weights), draws the same minibatches
(generator(seed, "minibatch-order"), a new permutation every epoch) and trains it with
torch.optim.AdamW / SGD and F.cross_entropy, timing the training loop only. Rounds alternate
(sequential, ensemble; --rounds, default 3) and medians are compared, min-max beside them.
Also printed: the achieved rate of both sides on the FLOPs of one member's forward and
backward (torch.utils.flop_counter) and the ceiling of any speed-up, the sequential time over
those FLOPs at the matmul peak. The load average is printed first: the 2-thread sequential
loop collapses when another process holds a core (small ops wait for the second thread), which
inflates the speed-up; trust numbers from a quiet machine (load < 2 on 2 CPUs).
Weights are compared per member as one flattened vector: relative difference
|theta_ens - theta_seq| / |theta_seq| (float32, different summation orders). Exit 1 unless the
median sampled member is within 1e-4 and at most a quarter of them beyond 1e-3: at a kink (a
ReLU pre-activation or a max-pooling window whose two largest entries are within rounding) a
member's gradient can change discontinuously, and that member splits off for good; the larger
the learning rate, the more often. Measured (cnn, 8 members, 300 steps, 2 threads): lr 0.02
with momentum 0.9 (the regime) 2e-7 to 3e-7 every member; lr 0.05 with momentum 0.9 four of
eight split (3e-4 to 4e-2, the rest 4e-7 to 7e-7), all still 2e-7 to 4e-7 after 100 steps;
lr 0.1 without momentum two split (4e-3, 1e-2). The transformer (GELU, no kinks, but Adam divides by
sqrt(v) and so magnifies rounding in small gradients): every member 1.7e-5 after 60 steps.

Measured 2026-12-01, transformer and cnn (2 CPUs shared with other jobs, load average 2-5;
medians of 3 rounds):
  1 thread   transformer K=8 1.2x, K=32 1.3x (16.6 s vs 21.2 s; ensemble 39 GFLOP/s, 276 ms a step)
             cnn         K=8 1.5x, K=32 1.7x (8.8 s vs 14.9 s; 29 ms a step)
  2 threads  transformer K=8 1.4x-3.5x, K=32 1.5x-1.6x (ensemble 18.5-19.7 s: 310-330 ms a step)
             cnn         K=8 4.1x, K=32 10.0x: NOT the ensemble's merit: the sequential loop took 205 s
             (14x its 1-thread time) because its 2-thread small ops wait for a core another job holds.
  The 1-thread numbers match the raw vmap step (bench/functional_ensemble.py: 1.3x, 1.8x), so the
  trainer (data, modules, minibatch gather, optimizer, checks) adds little: in the transformer
  step optimizer_step (AdamW over 3.5M floats, memory-bound) is 17 of 276 ms, in the cnn 0.4 of
  29 ms; the rest is losses_and_grads. What limits them, see bench/functional_ensemble.py:
  transformer bmm at ~60% of peak plus memory-bound elementwise work; cnn max_pool2d_with_indices
  and oneDNN grouped-convolution backward, about as costly per element as in the loop.

Run: make bench-ensemble [ARGS="--ks 8,64 --steps-scale 0.1"]  (the defaults, K up to 256, run for many minutes on 2 cores)
     make bench-ensemble ARGS="--regimes transformer,cnn"
 or: .venv/bin/python bench/ensemble.py [--threads 2] [--ks 8,64,256] [--steps-scale 1.0] [--regimes ...] [--rounds N]
"""

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lmech.models.cnn import CNNSpec
from lmech.models.family import build_model
from lmech.models.transformer import TransformerSpec
from lmech.seeding import generator
from lmech.spec import ModelSpec, OptimizerSpec, RunSpec
from lmech.tasks import make_task
from lmech.tasks.digits import DigitsSpec
from lmech.tasks.markov_language import MarkovLanguageSpec
from lmech.tasks.mnist1d import Mnist1dSpec
from lmech.train import build_ensemble, train_ensemble

REGIMES = {
    "microcosm": dict(width=32, batch_size=32, steps=2000, lr=0.05),
    "compute-bound": dict(width=128, batch_size=None, steps=500, lr=0.05),
}

# Any architecture through the public trainer: one RunSpec per member, differing in seed.
ARCHITECTURES = {
    "transformer": dict(
        task=MarkovLanguageSpec(vocab_size=64, seq_len=32),
        model=TransformerSpec(width=64, heads=4, depth=2, context=32),
        optimizer=OptimizerSpec(name="adamw", lr=1e-3, weight_decay=0.01, batch_size=16),
        steps=60, ks="8,32"),
    "cnn": dict(
        task=Mnist1dSpec(),
        model=CNNSpec(dim=1, width=32, depth=2, kernel_size=3, pool="max"),
        optimizer=OptimizerSpec(name="sgd", lr=0.02, momentum=0.9, batch_size=32),
        steps=300, ks="8,32"),
}
# relative, per member, all parameters as one vector (float32): the median sampled member within
# MEDIAN_TOLERANCE, at most a quarter of them beyond SPLIT_TOLERANCE (see the docstring)
MEDIAN_TOLERANCE, SPLIT_TOLERANCE = 1e-4, 1e-3


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


def architecture_specs(regime: dict, k: int, steps: int) -> list[RunSpec]:
    return [RunSpec(task=regime["task"], model=regime["model"], optimizer=regime["optimizer"], steps=steps,
                    seed=seed, observe={}) for seed in range(k)]


def sequential_modules(specs: list[RunSpec]) -> tuple[float, list[dict[str, torch.Tensor]]]:
    """Each spec as an ordinary nn.Module (lmech's builder, same seed, so the same initial weights)
    trained alone with torch.optim on the same minibatches; seconds of the training loops only."""
    first = specs[0]
    task = make_task(first.task, first.data_seed)
    x, y = task.x_train, task.y_train
    n, opt = x.shape[0], first.optimizer
    per_epoch = max(n // opt.batch_size, 1)
    shape, vocab = tuple(x.shape[1:]), getattr(task, "vocab_size", None)
    seconds, finals = 0.0, []
    for spec in specs:
        model = build_model(spec.model, shape, task.output_dim, vocab, spec.seed)
        if opt.name == "adamw":
            optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                                          weight_decay=opt.weight_decay)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum,
                                        weight_decay=opt.weight_decay)
        g = generator(spec.seed, "minibatch-order")
        start = time.perf_counter()
        for step in range(spec.steps):
            position = step % per_epoch
            if position == 0:
                order = torch.randperm(n, generator=g)
            index = order[position * opt.batch_size:(position + 1) * opt.batch_size]
            out = model(x[index])
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y[index].reshape(-1), ignore_index=-100)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        finals.append({name: p.detach().clone() for name, p in model.named_parameters()})
    return seconds, finals


def member_difference(mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> float:
    """|theta_ens - theta_seq| / |theta_seq| over all of one member's parameters as one vector (per tensor
    is unfair in float32: a parameter with an exactly zero gradient, like the attention key bias, gets
    Adam steps of size lr from rounding noise)."""
    diff = sum(float((mine[name] - value).pow(2).sum()) for name, value in theirs.items())
    norm = sum(float(value.pow(2).sum()) for value in theirs.values())
    return math.sqrt(diff / norm)


def member_step_flops(spec: RunSpec) -> int:
    """FLOPs (matmuls and convolutions, torch.utils.flop_counter) of one member's forward and backward on one
    minibatch."""
    task = make_task(spec.task, spec.data_seed)
    x, y = task.x_train[: spec.optimizer.batch_size], task.y_train[: spec.optimizer.batch_size]
    model = build_model(spec.model, tuple(x.shape[1:]), task.output_dim, getattr(task, "vocab_size", None), spec.seed)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
    return counter.get_total_flops()


def run_architecture(name: str, ks: list[int], args, peak: float) -> None:
    regime = ARCHITECTURES[name]
    steps = max(1, int(regime["steps"] * args.steps_scale))
    rounds = args.rounds or 3
    step_flops = member_step_flops(architecture_specs(regime, 1, steps)[0])
    for k in ks:
        specs = architecture_specs(regime, k, steps)
        train_ensemble(architecture_specs(regime, k, 2))  # warm-up: allocator, kernels, lazy imports
        sample = specs[: min(k, args.baseline_models)]
        seq_times, ens_times = [], []
        diffs = [0.0] * len(sample)
        for _ in range(rounds):
            seconds, finals = sequential_modules(sample)
            seq_times.append(seconds * k / len(sample))
            start = time.perf_counter()
            results = train_ensemble(specs)
            ens_times.append(time.perf_counter() - start)
            diffs = [max(d, member_difference(results[i].final_params, finals[i])) for i, d in enumerate(diffs)]
        seq, ens = statistics.median(seq_times), statistics.median(ens_times)
        median_diff, split = statistics.median(diffs), sum(d > SPLIT_TOLERANCE for d in diffs)
        scaled = f" (scaled from {len(sample)})" if len(sample) < k else ""
        flops = step_flops * k * steps
        print(f"{name:13s} K={k:<4d} {steps} {regime['optimizer'].name} steps, {rounds} rounds: "
              f"ensemble {ens:7.2f} s [{min(ens_times):.2f}-{max(ens_times):.2f}]  "
              f"sequential {seq:7.2f} s [{min(seq_times):.2f}-{max(seq_times):.2f}]{scaled}  "
              f"speed-up: {seq / ens:.1f}x  (ensemble {flops / ens / 1e9:.0f} GFLOP/s, sequential "
              f"{flops / seq / 1e9:.0f}, peak {peak:.0f}: ceiling {seq * peak * 1e9 / flops:.1f}x; rel. weight difference: median member {median_diff:.1e}, worst "
              f"{max(diffs):.1e}, {split} of {len(diffs)} beyond {SPLIT_TOLERANCE:.0e})", flush=True)
        if median_diff > MEDIAN_TOLERANCE or 4 * split > len(diffs):
            raise SystemExit(f"{name} K={k}: ensemble and sequential weights differ (median member "
                             f"{median_diff:.1e}, {split} of {len(diffs)} beyond {SPLIT_TOLERANCE:.0e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ks", default=None, help="default 8,64,256 (MLP regimes), 8,32 (transformer, cnn)")
    parser.add_argument("--regimes", default="microcosm,compute-bound",
                        help=f"comma-separated, of {', '.join([*REGIMES, *ARCHITECTURES])}")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds per K, medians compared (default 1 for the MLP regimes, 3 otherwise)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="shorten both sides alike (ratios unchanged)")
    parser.add_argument("--baseline-models", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # first use imports torch._dynamo (seconds)
    print(f"fp32 matmul peak here: {peak:.0f} GFLOP/s with {args.threads} threads; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    for name in args.regimes.split(","):
        if name in ARCHITECTURES:
            run_architecture(name, [int(v) for v in (args.ks or ARCHITECTURES[name]["ks"]).split(",")], args, peak)
            continue
        if name not in REGIMES:
            raise SystemExit(f"unknown regime '{name}'; known: {', '.join([*REGIMES, *ARCHITECTURES])}")
        regime = REGIMES[name]
        steps = max(1, int(regime["steps"] * args.steps_scale))
        for k in (int(v) for v in (args.ks or "8,64,256").split(",")):
            specs = specs_for(regime, k, steps)
            state = build_ensemble(specs)
            initial = {n: p.detach().clone() for n, p in state.params.items()}
            sample = specs[: min(k, args.baseline_models)]
            ens_times, seq_times, error = [], [], 0.0
            for _ in range(args.rounds or 1):
                start = time.perf_counter()
                results = train_ensemble(specs)
                ens_times.append(time.perf_counter() - start)
                seq_seconds, finals = sequential(sample, initial, state.x_train, state.y_train, regime["batch_size"])
                seq_times.append(seq_seconds * k / len(sample))
                error = max(error, *(agree(results[i].final_params, finals[i]) for i in range(len(sample))))
            ensemble_seconds, seq_seconds = statistics.median(ens_times), statistics.median(seq_times)
            batch = regime["batch_size"] or state.x_train.shape[0]
            flops = flops_per_step([64, regime["width"], regime["width"], 10], batch) * steps * k
            print(f"{name:13s} K={k:<4d} ensemble {ensemble_seconds:7.2f} s  sequential {seq_seconds:7.2f} s"
                  f"{' (scaled from ' + str(len(sample)) + ')' if len(sample) < k else ''}  "
                  f"speed-up: {seq_seconds / ensemble_seconds:.1f}x  "
                  f"{flops / ensemble_seconds / 1e9:.1f} GFLOP/s = {100 * flops / ensemble_seconds / 1e9 / peak:.0f}% "
                  f"of peak {peak:.0f}  (max rel. weight difference {error:.1e})", flush=True)


if __name__ == "__main__":
    main()
