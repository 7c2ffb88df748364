"""Multi-query associative recall (MQAR): key-value pairs, then queries whose answer is the key's value.

One job: sequences that state D key-value pairs and then ask for Q of the keys
again, so that only a model that stores and looks up the pairs in context
scores (the recall gap between attention and fixed-state recurrences). It
ignores Zoology's power-law spacing of the queries (queries sit in uniformly
drawn slots) and its random filler tokens (the filler is a blank token 0).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmech.seeding import generator
from lmech.tasks.task import IGNORE_INDEX, Task

__all__ = ["AssociativeRecallSpec", "make_associative_recall"]


class AssociativeRecallSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["associative_recall"] = "associative_recall"
    vocab_size: int = Field(64, ge=4, le=65_536, description="V: 0 is blank, keys are 1..V/2-1, values V/2..V-1")
    n_pairs: int = Field(8, ge=1, description="D key-value pairs per sequence (distinct keys, distinct values)")
    n_queries: int = Field(8, ge=1, description="Q of the D keys asked again (distinct), at most D")
    seq_len: int = Field(64, ge=2, le=65_536, description="T, even; the first 2D tokens are the pairs")
    n_train: int = Field(2048, ge=1, le=10_000_000)
    n_test: int = Field(256, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _fits(self):
        keys, values = self.vocab_size // 2 - 1, self.vocab_size - self.vocab_size // 2
        if self.n_pairs > min(keys, values):
            raise ValueError(f"n_pairs = {self.n_pairs} distinct keys and values need vocab_size >= "
                             f"{2 * self.n_pairs + 2}; got {self.vocab_size}")
        if self.n_queries > self.n_pairs:
            raise ValueError(f"n_queries = {self.n_queries} exceeds n_pairs = {self.n_pairs} "
                             "(queries are distinct keys)")
        if self.seq_len % 2 or (self.seq_len - 2 * self.n_pairs) // 2 < self.n_queries:
            raise ValueError(f"seq_len must be even with room for {self.n_queries} query slots after the "
                             f"{2 * self.n_pairs} pair tokens; got {self.seq_len}")
        return self


def make_associative_recall(spec: AssociativeRecallSpec, seed: int) -> Task:
    """Sequences k_1 v_1 ... k_D v_D, then a region of blanks holding Q queried keys.

    Each sequence draws D distinct keys from 1..V/2-1 and D distinct values from
    V/2..V-1 (pair j is (k_j, v_j)), then Q distinct pairs to query and Q
    distinct slots among the (T - 2D)/2 even offsets of the region after the
    pairs; the query region is blank (token 0) except for the queried keys.
    The target at a query position is the value of its key (the token that
    should come next); every other target is IGNORE_INDEX (-100), so
    "cross_entropy" is the recall loss. Unlike a language task, y is not x
    shifted: the answers never appear in x after their query.
    Shapes: x (N, T) int64 in [0, V); y (N, T) int64; output_dim = vocab_size = V.
    extras: none.
    Algorithm: argsort of uniform noise for each draw without replacement, O(N V log V).
    Source: Arora, Eyuboglu et al. 2023, "Zoology: measuring and improving recall in efficient
    language models" (the MQAR task), and its reference generator (HazyResearch/zoology,
    multiquery_ar with random_non_queries=False).
    """
    v, d, q, t = spec.vocab_size, spec.n_pairs, spec.n_queries, spec.seq_len
    half = v // 2
    slots = (t - 2 * d) // 2

    def draw(n: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator(seed, purpose)
        keys = 1 + torch.rand(n, half - 1, generator=g).argsort(1)[:, :d]
        values = half + torch.rand(n, v - half, generator=g).argsort(1)[:, :d]
        asked = torch.rand(n, d, generator=g).argsort(1)[:, :q]  # which pairs, in query order
        where = 2 * d + 2 * torch.rand(n, slots, generator=g).argsort(1)[:, :q].sort(1).values
        x = torch.zeros(n, t, dtype=torch.int64)
        x[:, 0:2 * d:2], x[:, 1:2 * d:2] = keys, values
        x.scatter_(1, where, keys.gather(1, asked))
        y = torch.full_like(x, IGNORE_INDEX)
        y.scatter_(1, where, values.gather(1, asked))
        return x, y

    x_train, y_train = draw(spec.n_train, "associative_recall-train")
    x_test, y_test = draw(spec.n_test, "associative_recall-test")
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", v, {}, vocab_size=v)
