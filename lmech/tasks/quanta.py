"""Multitask sparse parity: many independent skills ("quanta") used with Zipfian frequencies.

One job: draw n_tasks sparse-parity subtasks (each the parity of its own k of
n bits) and examples whose subtask index follows a power law, so that a
network learning the skills in order of use shows a power-law scaling of loss
with parameters, data and steps. It ignores the theory of that scaling (the
exponent alpha / (alpha + 1) and friends belong in theory/).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmech.seeding import generator
from lmech.tasks.task import IGNORE_INDEX, Task

__all__ = ["QuantaSpec", "make_quanta"]


class QuantaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["quanta"] = "quanta"
    n_tasks: int = Field(64, ge=1, le=65_536, description="number of subtasks (quanta); Michaud et al. use 500")
    n_bits: int = Field(32, ge=1, le=65_536, description="n task bits per example; Michaud et al. use 100")
    k: int = Field(3, ge=1, description="bits in each subtask's parity")
    alpha: float = Field(0.4, gt=0, description="subtask i (1-based) is drawn with probability ~ i^-(alpha + 1)")
    n_train: int = Field(8192, ge=1, le=10_000_000)
    n_test: int = Field(2048, ge=1, le=10_000_000)
    layout: Literal["bits", "tokens"] = Field(
        "bits", description="bits: (N, n_tasks + n_bits) float32 for an MLP (the paper's); "
                            "tokens: (N, 1 + n_bits) int64 for a sequence model")

    @model_validator(mode="after")
    def _k_fits(self):
        if self.k > self.n_bits:
            raise ValueError(f"k = {self.k} parity bits do not fit in n_bits = {self.n_bits}")
        return self


def make_quanta(spec: QuantaSpec, seed: int) -> Task:
    """Examples (subtask i, bits b) labelled with the parity of b on subtask i's k bits.

    Subtask i in 0..n_tasks-1 owns a uniformly drawn set S_i of k distinct bit
    positions; an example draws i with probability p_i = (i + 1)^-(alpha + 1) / Z,
    bits b ~ Bernoulli(1/2)^n, label sum_{j in S_i} b_j mod 2. Train and test
    are independent draws (an example may repeat, with probability about
    N^2 2^-n_bits).
    Layouts:
      "bits": x (N, n_tasks + n_bits) float32 in {0, 1}, the one-hot control bits of i
        then b; y (N,) int64 in {0, 1}; loss "cross_entropy", output_dim 2; vocab_size None.
      "tokens": x (N, 1 + n_bits) int64: the subtask token 2 + i, then the bits as tokens
        0/1; y (N, 1 + n_bits) int64, IGNORE_INDEX (-100) everywhere but the last position,
        which holds the label (token 0 or 1); V = output_dim = vocab_size = 2 + n_tasks.
    extras: "task_probs" (n_tasks,) float64 p_i; "subsets" (n_tasks, k) int64 S_i
    (sorted); "train_task", "test_task" (N,) int64 the subtask of each example.
    Algorithm: one seeded draw each for the subsets, the subtask indices
    (multinomial), the bits; O(N n_bits).
    Source: Michaud, Liu, Girit & Tegmark 2023, "The quantization model of neural scaling",
    Sec. 3 (multitask sparse parity, control bits, p_k ~ k^-(alpha+1)).
    """
    n_tasks, n = spec.n_tasks, spec.n_bits
    g = generator(seed, "quanta-subsets")
    subsets = torch.rand(n_tasks, n, generator=g).argsort(1)[:, :spec.k].sort(1).values
    probs = torch.arange(1, n_tasks + 1, dtype=torch.float64) ** -(spec.alpha + 1)
    probs = probs / probs.sum()

    def draw(count: int, purpose: str):
        g = generator(seed, purpose)
        task = torch.multinomial(probs, count, replacement=True, generator=g)
        bits = (torch.rand(count, n, generator=g) < 0.5).long()
        label = bits.gather(1, subsets[task]).sum(1) % 2
        if spec.layout == "bits":
            x = torch.cat([torch.nn.functional.one_hot(task, n_tasks), bits], dim=1).float()
            return x, label, task
        x = torch.cat([(2 + task).unsqueeze(1), bits], dim=1)
        y = torch.full_like(x, IGNORE_INDEX)
        y[:, -1] = label
        return x, y, task

    x_train, y_train, task_train = draw(spec.n_train, "quanta-train")
    x_test, y_test, task_test = draw(spec.n_test, "quanta-test")
    extras = {"task_probs": probs, "subsets": subsets, "train_task": task_train, "test_task": task_test}
    if spec.layout == "bits":
        return Task(x_train, y_train, x_test, y_test, "cross_entropy", 2, extras)
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", 2 + n_tasks, extras, vocab_size=2 + n_tasks)
