"""Train a small (width x data) grid with lmech and write the CSVs used by the README's forecasting section.

Writes, next to this file:
  scaling_runs.csv   columns N (trainable parameters), D (training examples seen), loss (test loss,
                     mean over 8 members trained as one ensemble per width)
  learning_curve.csv columns step, loss (test loss of the widest run, seed 0, from step 128)

The design of part (b) of the atlas's scaling-law phenomenon: task power_law_map (x ~ N(0, I_64),
y = M x + 0.1 noise, singular values of M = k^-1), a two-layer deep linear network of width
2..32 from 0.3 x SP init, trained online by SGD (lr 0.02, batch 32, 2,048 steps, every example
fresh), so the test loss at step S is that of a model of N = 2 x 64 x width parameters trained on
D = 32 S examples. Rows with D >= 4,096 (past the small-init plateau). Runs go to a store in
./lmech-runs/scaling-example (resumable). Usage: python examples/make_scaling_csv.py
"""


import csv
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from lmech.engine import execute
from lmech.models.mlp import ModelSpec
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.store import Store
from lmech.tasks.power_law_map import PowerLawMapSpec

WIDTHS = [2, 4, 8, 16, 32]
SEEDS = list(range(8))
DIM, BATCH, STEPS = 64, 32, 2048
FIRST_STEP = 128  # rows from D = BATCH x 128 = 4,096 examples on


def _params(width: int) -> int:
    return 2 * DIM * width  # (64 x width) + (width x 64), no biases


def main() -> None:
    torch.set_num_threads(1)
    threadpool_limits(1)
    out = Path(__file__).resolve().parent
    specs = [RunSpec(task=PowerLawMapSpec(n_train=BATCH * STEPS, n_test=2048, input_dim=DIM, output_dim=DIM,
                                          decay=1.0, noise=0.1),
                     model=ModelSpec(kind="deep_linear", width=w, depth=1, activation="linear", bias=False,
                                     init_scale=0.3),
                     optimizer=OptimizerSpec(name="sgd", lr=0.02, batch_size=BATCH), steps=STEPS,
                     seed=seed, data_seed=None, observe={"loss": ObserveSpec(every="log", count=48, train=False)})
             for w in WIDTHS for seed in SEEDS]
    store = Store(Path("lmech-runs") / "scaling-example")
    execute(specs, store, executor="process", workers=2)
    rows = {}
    for spec in specs:
        steps, values = store.series(spec.id, "test_loss")
        for step, value in zip(steps, values):
            if step >= FIRST_STEP:
                rows.setdefault((_params(spec.model.width), BATCH * step), []).append(value)
    with (out / "scaling_runs.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["N", "D", "loss"])
        for (n, d), losses in sorted(rows.items()):
            writer.writerow([n, d, f"{np.mean(losses):.6g}"])
    largest = next(s for s in specs if s.model.width == WIDTHS[-1] and s.seed == 0)
    steps, values = store.series(largest.id, "test_loss")
    with (out / "learning_curve.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss"])
        kept = [(step, value) for step, value in zip(steps, values) if step >= FIRST_STEP]
        writer.writerows([step, f"{value:.6g}"] for step, value in kept)
    print(f"wrote {out / 'scaling_runs.csv'} ({len(rows)} rows) and {out / 'learning_curve.csv'} ({len(kept)} rows)")


if __name__ == "__main__":
    main()
