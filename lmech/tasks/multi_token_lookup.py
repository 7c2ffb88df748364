"""Multi-token lookup: k answer tokens per sequence, each a fixed position-dependent table of its input token.

One job: sequences x_1 .. x_k of i.i.d. tokens (uniform, or Zipf) whose target at position t is
pi_t(x_t), with pi_1 .. pi_k random permutations of the vocabulary (one set
per task seed). An answer is exactly right only when all k tokens are, so
the task separates per-token accuracy from exact match (Schaeffer, Miranda &
Koyejo 2023). With Zipf-distributed tokens a model that can store C
(position, token) pairs keeps the most frequent ones, so the per-token loss
falls smoothly (as a power of C) with model size, as in the quantization model
of Michaud et al. (2023); with uniform tokens it drops abruptly once C reaches k V. It ignores
dependencies between answer tokens (each depends on its own input token).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["MultiTokenLookupSpec", "make_multi_token_lookup"]


class MultiTokenLookupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["multi_token_lookup"] = "multi_token_lookup"
    vocab_size: int = Field(32, ge=2, le=65_536, description="V")
    length: int = Field(8, ge=1, le=4096, description="k, answer tokens per sequence (= sequence length T)")
    zipf_exponent: float = Field(0.0, ge=0, description="s: token i (0-based) drawn with probability "
                                 "proportional to (i + 1)^-s; 0 is uniform")
    n_train: int = Field(4096, ge=1, le=10_000_000)
    n_test: int = Field(1024, ge=1, le=10_000_000)


def make_multi_token_lookup(spec: MultiTokenLookupSpec, seed: int) -> Task:
    """x (N, k) int64 in [0, V), i.i.d. with Zipf frequencies (uniform when s = 0); y (N, k) int64 with y[:, t] = pi_t(x[:, t]); loss cross_entropy.

    output_dim = vocab_size = V. extras: "tables" (k, V) int64, row t is pi_t.
    Algorithm: k argsorts of uniform noise for the tables, O(k V log V + N k).
    """
    g = generator(seed, "multi_token_lookup")
    v, k = spec.vocab_size, spec.length
    tables = torch.stack([torch.randperm(v, generator=g) for _ in range(k)])  # (k, V)
    positions = torch.arange(k)
    frequencies = torch.arange(1, v + 1, dtype=torch.float64) ** -spec.zipf_exponent
    frequencies = frequencies / frequencies.sum()

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.multinomial(frequencies, n * k, replacement=True, generator=g).reshape(n, k)
        return x, tables[positions, x]

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", v, {"tables": tables, "frequencies": frequencies}, vocab_size=v)
