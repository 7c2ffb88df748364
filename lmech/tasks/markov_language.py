"""A random order-k Markov chain over V tokens: a language whose best possible loss is known exactly.

One job: draw a chain (each context's next-token distribution from a symmetric
Dirichlet), sample sequences from it started in its stationary distribution,
and report its entropy rate, the cross-entropy of the true conditional
probabilities (no model can do better in expectation). It ignores hidden
states (an HMM) and non-stationary starts.
"""

from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmech.seeding import child_seed, generator
from lmech.tasks.task import IGNORE_INDEX, Task

__all__ = ["MarkovLanguageSpec", "make_markov_language", "MAX_CONTEXTS"]

MAX_CONTEXTS = 4096  # V^k: the stationary distribution is a dense O((V^k)^3) solve


class MarkovLanguageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["markov_language"] = "markov_language"
    vocab_size: int = Field(16, ge=2, le=65_536, description="V tokens")
    order: int = Field(1, ge=1, le=64, description="k: the next token depends on the last k tokens")
    concentration: float = Field(1.0, gt=0, description="alpha of the symmetric Dirichlet each transition row is "
                                                          "drawn from: small alpha, peaked rows and low entropy")
    seq_len: int = Field(64, ge=2, le=65_536, description="T tokens per input sequence")
    n_train: int = Field(512, ge=1, le=10_000_000, description="training sequences")
    n_test: int = Field(128, ge=1, le=10_000_000, description="test sequences")

    @model_validator(mode="after")
    def _contexts_fit(self):
        if self.vocab_size**self.order > MAX_CONTEXTS:
            raise ValueError(f"vocab_size^order = {self.vocab_size**self.order} contexts exceeds {MAX_CONTEXTS} "
                             "(the stationary distribution is a dense solve)")
        if self.order >= self.seq_len:
            raise ValueError(f"order {self.order} leaves no scored position in seq_len {self.seq_len}")
        return self


def _stationary(transition: torch.Tensor, v: int) -> torch.Tensor:
    """pi (S,) float64 with pi Q = pi for the chain on contexts, S = V^k.

    Context index s = sum_j token_j V^(k-1-j) (oldest token first); token u
    moves context s to (s V + u) mod S with probability transition[s, u].
    Solved as (Q^T - I) pi = 0 with one equation replaced by sum(pi) = 1.
    """
    s = transition.shape[0]
    q = torch.zeros(s, s, dtype=torch.float64)
    rows = torch.arange(s).repeat_interleave(v)
    cols = (torch.arange(s).unsqueeze(1) * v + torch.arange(v)).reshape(-1) % s
    q.index_put_((rows, cols), transition.reshape(-1), accumulate=True)
    system = q.T - torch.eye(s, dtype=torch.float64)
    system[-1] = 1.0
    rhs = torch.zeros(s, dtype=torch.float64)
    rhs[-1] = 1.0
    return torch.linalg.solve(system, rhs).clamp(min=0.0)


def make_markov_language(spec: MarkovLanguageSpec, seed: int) -> Task:
    """Sequences of a random order-k chain, started in its stationary distribution.

    The chain: for each of the S = V^k contexts a next-token distribution
    P[s] ~ Dirichlet(alpha 1_V) (all entries positive almost surely, so the
    chain on contexts is irreducible and aperiodic). Each sequence is T + 1
    tokens whose first k are a context drawn from the stationary distribution
    pi, the rest drawn from P; x is the first T tokens and y the last T (next
    tokens). The first k - 1 targets are tokens of the starting context, not
    transitions, and are masked with IGNORE_INDEX (-100), so every scored
    position has its full context in x and the expected "cross_entropy" of the
    true probabilities is exactly the entropy rate.
    Shapes: x (N, T) int64 in [0, V); y (N, T) int64; output_dim = vocab_size = V.
    extras: "entropy_rate" () float64 in nats, H = -sum_s pi_s sum_u P[s, u] log P[s, u];
    "transition" (S, V) float64 P; "stationary" (S,) float64 pi (context index
    s = sum_j token_j V^(k-1-j), oldest token first).
    Algorithm: the chain from `seed` ("markov_language-chain"), train and test
    sequences from their own child seeds; pi by a dense linear solve, O(S^3);
    sampling by inverse CDF, O(N T log V).
    Source: Cover & Thomas, Elements of Information Theory, Thm. 4.2.4 (entropy rate of a
    stationary Markov chain, H = sum_i mu_i H(P_i.)). Edelman et al. 2024, "The evolution of
    statistical induction heads", draw a new chain per sequence instead; here one chain
    serves every sequence, so it can be learned in the weights.
    Failure modes: with a tiny concentration some P[s, u] round to 0, which is
    harmless for H (0 log 0 = 0) but can make pi's solve ill-conditioned.
    """
    v, k, t = spec.vocab_size, spec.order, spec.seq_len
    s = v**k
    rng = np.random.default_rng(child_seed(seed, "markov_language-chain"))  # torch has no seeded Dirichlet
    transition = torch.from_numpy(rng.dirichlet(np.full(v, spec.concentration), size=s))
    pi = _stationary(transition, v)
    entropy_rate = -(pi * torch.special.xlogy(transition, transition).sum(1)).sum()
    cdf = transition.cumsum(1)
    start_cdf = pi.cumsum(0)
    powers = v ** torch.arange(k - 1, -1, -1)

    def sample(n: int, purpose: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator(seed, purpose)
        start = torch.searchsorted(start_cdf, torch.rand(n, 1, generator=g, dtype=torch.float64) * start_cdf[-1])
        context = start.squeeze(1).clamp(max=s - 1)
        tokens = torch.empty(n, t + 1, dtype=torch.int64)
        tokens[:, :k] = (context.unsqueeze(1) // powers) % v
        for i in range(k, t + 1):
            u = torch.rand(n, 1, generator=g, dtype=torch.float64) * cdf[context, -1:]
            nxt = torch.searchsorted(cdf[context], u).squeeze(1).clamp(max=v - 1)
            tokens[:, i] = nxt
            context = (context * v + nxt) % s
        y = tokens[:, 1:].clone()
        y[:, :k - 1] = IGNORE_INDEX
        return tokens[:, :t], y

    x_train, y_train = sample(spec.n_train, "markov_language-train")
    x_test, y_test = sample(spec.n_test, "markov_language-test")
    extras = {"entropy_rate": entropy_rate, "transition": transition, "stationary": pi}
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", v, extras, vocab_size=v)
