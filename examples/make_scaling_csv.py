"""Train a small (width x data) grid with lmech and write the CSVs used by the README's forecasting section.

Writes, next to this file:
  scaling_runs.csv   columns N (trainable parameters), D (training examples seen), loss (test loss,
                     mean over 3 seeds trained as one ensemble per width)
  learning_curve.csv columns step, loss (test loss of the widest run, seed 0)

Task: teacher-student regression (8 inputs, tanh teacher of width 128, label noise 0.05), a
one-hidden-layer ReLU student of width H trained online: Adam (lr 0.003), batch 32, at most one
epoch of 16,384 examples, so D = 32 x step examples are all fresh and the test loss at step S
is the loss of a model of N parameters trained on D = 32 S examples (constant learning rate: a
checkpoint of one run stands in for a separate run per D). Runs go to a store in
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
from lmech.tasks.teacher_student import TeacherStudentSpec

WIDTHS = [2, 4, 8, 16, 32, 64]
SEEDS = [0, 1, 2]
INPUT_DIM, TEACHER_WIDTH, BATCH, STEPS = 8, 128, 32, 512
READ_AT = [16, 32, 64, 128, 256, 512]  # steps whose test loss becomes a row (D = BATCH x step)


def _params(width: int) -> int:
    return (INPUT_DIM + 1) * width + (width + 1)  # one hidden layer with biases, one output


def main() -> None:
    torch.set_num_threads(1)
    threadpool_limits(1)
    out = Path(__file__).resolve().parent
    specs = [RunSpec(task=TeacherStudentSpec(n_train=BATCH * STEPS, n_test=2048, input_dim=INPUT_DIM,
                                             teacher_width=TEACHER_WIDTH, noise=0.05),
                     model=ModelSpec(width=w, depth=1, activation="relu"),
                     optimizer=OptimizerSpec(name="adam", lr=0.003, batch_size=BATCH), steps=STEPS,
                     seed=seed, data_seed=0, observe={"loss": ObserveSpec(every=8)})
             for w in WIDTHS for seed in SEEDS]
    store = Store(Path("lmech-runs") / "scaling-example")
    execute(specs, store, executor="process", workers=2)
    rows = {}
    for spec in specs:
        steps, values = store.series(spec.id, "test_loss")
        by_step = dict(zip(steps, values))
        for step in READ_AT:
            rows.setdefault((_params(spec.model.width), BATCH * step), []).append(by_step[step])
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
        for step, value in zip(steps, values):
            if step > 0:
                writer.writerow([step, f"{value:.6g}"])
    print(f"wrote {out / 'scaling_runs.csv'} ({len(rows)} rows) and {out / 'learning_curve.csv'} ({len(steps) - 1} rows)")


if __name__ == "__main__":
    main()
