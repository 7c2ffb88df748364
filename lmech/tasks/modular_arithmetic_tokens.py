"""Modular arithmetic as token sequences "a op b =" -> c (the grokking data of Power et al. 2022).

One job: the full table of equations for one binary operation mod a prime p,
written as four input tokens, with only the answer position scored, split at
random into train and test. It ignores mixing several operations in one data
set and one-hot MLP inputs (see ``modular_addition.py``).
"""

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmech.seeding import generator
from lmech.tasks.task import IGNORE_INDEX, Task

__all__ = ["ModularArithmeticTokensSpec", "make_modular_arithmetic_tokens"]


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


class ModularArithmeticTokensSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["modular_arithmetic_tokens"] = "modular_arithmetic_tokens"
    modulus: int = Field(97, ge=2, le=4096, description="p: residues 0..p-1 (prime, required for '/')")
    operation: Literal["+", "-", "*", "/"] = Field("+", description="c = a op b mod p; '/' is a * b^-1 with b != 0")
    train_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="share of the equations used for training")

    @model_validator(mode="after")
    def _division_needs_a_prime(self):
        if self.operation == "/" and not _is_prime(self.modulus):
            raise ValueError(f"operation '/' needs a prime modulus (every b != 0 invertible); got {self.modulus}")
        return self


def make_modular_arithmetic_tokens(spec: ModularArithmeticTokensSpec, seed: int) -> Task:
    """Every equation "a op b = c" once, a random split drawn from `seed`.

    Tokens: residues 0..p-1 are themselves, p is the operation, p + 1 is "=";
    V = p + 2. Each example is x = [a, p, b, p + 1] and y = [-100, -100, -100, c]:
    the next-token targets of x with every position but the answer masked by
    IGNORE_INDEX (-100), so "cross_entropy" scores only c.
    Shapes: x (N, 4) int64 in [0, V); y (N, 4) int64; output_dim = vocab_size = V.
    The equations are all pairs 0 <= a, b < p (p^2 of them), or 0 < b < p for
    "/" (p(p - 1)); the training set has round(train_fraction * count) of them
    (at least 1, at most count - 1), the test set the rest.
    extras: "train_pairs" (N_train, 2) and "test_pairs" (N_test, 2) int64 (a, b);
    "train_answers", "test_answers" (N,) int64 c.
    Algorithm: c = (a + b), (a - b), (a b) or a b^(p - 2) mod p (Fermat's inverse);
    O(p^2) tokens.
    Source: Power et al. 2022, "Grokking: generalization beyond overfitting on
    small algorithmic datasets", Sec. 2 (equations "a o b = c" as token sequences, only
    the answer trained) and its list of operations (division for 0 < b < p).
    """
    p = spec.modulus
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    if spec.operation == "/":
        a, b = a[b != 0], b[b != 0]
    if spec.operation == "+":
        c = (a + b) % p
    elif spec.operation == "-":
        c = (a - b) % p
    elif spec.operation == "*":
        c = (a * b) % p
    else:
        inverse = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])  # b^(p-2) = b^-1 for prime p
        c = (a * inverse[b]) % p
    n = len(a)
    x = torch.stack([a, torch.full_like(a, p), b, torch.full_like(a, p + 1)], dim=1)
    y = torch.full_like(x, IGNORE_INDEX)
    y[:, 3] = c
    order = torch.randperm(n, generator=generator(seed, "modular-arithmetic-tokens-split"))
    n_train = min(max(int(round(spec.train_fraction * n)), 1), n - 1)
    train, test = order[:n_train], order[n_train:]
    pairs = torch.stack([a, b], dim=1)
    extras = {"train_pairs": pairs[train], "test_pairs": pairs[test],
              "train_answers": c[train], "test_answers": c[test]}
    return Task(x[train], y[train], x[test], y[test], "cross_entropy", p + 2, extras, vocab_size=p + 2)
