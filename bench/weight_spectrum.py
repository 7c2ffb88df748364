"""Benchmark: per-layer power-law alpha of the weight ESDs, lmech vs WeightWatcher 0.7.5.

Models (both seeded):
  * the trained 564k-parameter MLP of bench/sharpness.py: 64 -> 512 -> 512 -> 512 -> 10
    (ReLU, seed 0), 200 full-batch SGD steps (lr 0.1) of cross-entropy on the full
    standardized digits set (1,797 examples);
  * MLP 784 -> 2048 -> 2048 -> 10 (ReLU, 5.8M parameters) at PyTorch's default
    initialization under torch.manual_seed(1), untrained. Its ESDs are Marchenko-Pastur
    bulks, whose fitted alphas are large and sensitive to the estimator's conventions,
    which makes this model a stress test for agreement.

What is measured: per layer, both alphas and |difference|; per model, the median time
of each tool over alternating rounds (the machine is shared and noisy), with 1 torch
thread and 1 BLAS thread for both, and `speed-up: N.Nx` = WeightWatcher time / lmech time.
The target is every |difference| <= 0.05 and a speed-up of at least 1.

How each tool is called:
  * lmech: `weight_spectrum(model)` with defaults (min_eigenvalues=50, min_tail=10).
  * WeightWatcher: `WeightWatcher(model=model).analyze(min_evals=50)`. Its other settings
    are the defaults; min_evals=50 (default 10) makes it skip the same layers as lmech, the
    512 -> 10 and 2048 -> 10 outputs with 10 eigenvalues. Every layer is analyzed once per call.

What WeightWatcher 0.7.5 computes by default (read from its source):
  * layers: every Linear/Conv/Embedding module with 10 <= min(N, M) <= 15000 and max dim <= 50000;
  * ESD: squared singular values of the float32 weight cast to float64. Without CUDA, `svd_method='fast'`
    falls back to scipy.linalg.svd(W, compute_uv=False); no normalization by N, which
    alpha does not depend on. Eigenvalues <= 1e-5 are dropped before the fit;
  * fit: its own `WWFit` (pl_package='ww', not the `powerlaw` package's Fit): continuous
    MLE alpha = 1 + n / sum ln(x / xmin) for every sorted eigenvalue but the largest as
    xmin (tails down to 2), KS distance max |1 - (x/xmin)^(1-alpha) - i/n| over the tail
    (empirical CDF at the left limit of each step, as in Clauset's plfit.m and `powerlaw`),
    the xmin of minimal distance; no xmax, no fix_fingers, no xmin_max;
  * randomness: none by default (randomize=False; no sampling).

lmech's `fit_power_law` uses the same KS convention and MLE and ignores eigenvalues <= 0
instead of <= 1e-5. It considers tails of at least 10 eigenvalues; WeightWatcher goes down to 2.
The alphas agree when WeightWatcher's best tail has at least 10 eigenvalues.

WeightWatcher is NOT a dependency of lmech. `make bench-weight-spectrum` builds a separate
environment, .venv-bench, and runs this script there (ARGS="--rounds 3" passes arguments).
By hand, the same steps (the constraint keeps the CPU torch whatever a requirement declares):

    python3.11 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/pip install -e .
    echo torch==2.13.0 > .venv-bench/constraints.txt
    .venv-bench/bin/pip install -c .venv-bench/constraints.txt -r bench/requirements-weight-spectrum.txt
    .venv-bench/bin/python bench/weight_spectrum.py [--rounds 3]

.venv-bench/ must not be committed.
"""

import argparse
import logging
import statistics
import sys
import time

import torch
from threadpoolctl import threadpool_limits

try:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)  # it warns at import that CUDA is absent
    import weightwatcher
except ImportError:
    sys.exit("weightwatcher is not installed in this environment. How to set one up:\n\n"
             + __doc__[__doc__.index("WeightWatcher is NOT"):])

from lmech.instruments.weight_spectrum import weight_spectrum
from workloads import digits, relu_mlp, train_full_batch

TOLERANCE = 0.05  # the target for |alpha_lmech - alpha_ww|
MIN_EVALS = 50  # lmech's default min_eigenvalues, passed to WeightWatcher


def lmech_alphas(model) -> dict[str, tuple[float, int]]:
    """{parameter name: (alpha, n_tail)} for the layers lmech fits."""
    r = weight_spectrum(model)
    return {name: (s.alpha, s.n_tail) for name, s in r.layers.items() if s.fitted}


def ww_alphas(model) -> dict[str, tuple[float, int]]:
    """{parameter name: (alpha, tail size)} for the layers WeightWatcher analyzes."""
    details = weightwatcher.WeightWatcher(model=model).analyze(min_evals=MIN_EVALS)
    return {f"{row.longname}.weight": (float(row.alpha), int(row.num_pl_spikes)) for row in details.itertuples()}


def timed(f, model):
    t = time.perf_counter()
    out = f(model)
    return out, time.perf_counter() - t


def bench_model(title: str, model: torch.nn.Module, rounds: int) -> bool:
    print(f"\n=== {title} ===")
    runs = {"lmech": [], "ww": []}
    for r in range(rounds):
        for who in (["lmech", "ww"] if r % 2 == 0 else ["ww", "lmech"]):
            runs[who].append(timed(lmech_alphas if who == "lmech" else ww_alphas, model))
    lm, ww = runs["lmech"][0][0], runs["ww"][0][0]
    deterministic = all(out == lm for out, _ in runs["lmech"]) and all(out == ww for out, _ in runs["ww"])
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    print(f"{'layer':<10} {'W (out, in)':<14} {'lmech alpha (tail)':>20} {'WW alpha (tail)':>18} {'|diff|':>8}")
    ok = set(lm) == set(ww)
    for name in sorted(set(lm) | set(ww), key=lambda n: int(n.split(".")[0])):
        a = f"{lm[name][0]:.4f} ({lm[name][1]})" if name in lm else "not fitted"
        b = f"{ww[name][0]:.4f} ({ww[name][1]})" if name in ww else "not analyzed"
        diff = abs(lm[name][0] - ww[name][0]) if name in lm and name in ww else float("nan")
        ok = ok and diff <= TOLERANCE
        print(f"{name:<10} {str(shapes[name]):<14} {a:>20} {b:>18} {diff:>8.1e}")
    print(f"same layers, every |diff| <= {TOLERANCE}: {ok}; alphas identical across rounds: {deterministic}")
    t_lm = statistics.median(t for _, t in runs["lmech"])
    t_ww = statistics.median(t for _, t in runs["ww"])
    fmt = (lambda rs: ", ".join(f"{t:.3f}" for _, t in rs))
    print(f"lmech weight_spectrum       {t_lm:.3f} s  (rounds: {fmt(runs['lmech'])})")
    print(f"WeightWatcher analyze       {t_ww:.3f} s  (rounds: {fmt(runs['ww'])})")
    print(f"speed-up: {t_ww / t_lm:.1f}x")
    return ok and t_ww >= t_lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (shared machine: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, weightwatcher {weightwatcher.__version__}")

    batch = digits()
    small = train_full_batch(relu_mlp([64, 512, 512, 512, 10], seed=0), batch, steps=200, lr=0.1)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(small(batch[0]), batch[1]).item()
    big = relu_mlp([784, 2048, 2048, 10], seed=1)
    lmech_alphas(small), ww_alphas(small)  # warm-up: lazy imports and first-call costs, untimed

    met = [bench_model(f"MLP 64-512-512-512-10, {sum(p.numel() for p in small.parameters())} parameters, "
                       f"200 SGD steps on digits (loss {loss:.4f})", small, args.rounds),
           bench_model(f"MLP 784-2048-2048-10, {sum(p.numel() for p in big.parameters())} parameters, "
                       f"default init (seed 1)", big, args.rounds)]
    print(f"\ntarget met (alphas within {TOLERANCE}, no slower) for both models: {all(met)}")


if __name__ == "__main__":
    main()
