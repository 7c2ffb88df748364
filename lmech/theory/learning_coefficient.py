"""Theoretical learning coefficients (RLCTs) of reduced-rank regression and deep linear networks.

One job: the real log canonical threshold lambda of the realizable Gaussian
regression y = W_L ... W_1 x + N(0, I) whose true map has rank r, in closed
form. It ignores the multiplicity m (the order of the pole), models with
biases or nonlinearities, and non-realizable truths.

lambda is dimensionless; a regular model with d parameters has d / 2. The
Bayes free energy is n L_n(w0) + lambda log n + O(log log n), and the local
learning coefficient estimated by SGLD at a true parameter is its local
version (Lau et al. 2023).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from lmech.errors import InputError

__all__ = ["reduced_rank_regression_coefficient", "deep_linear_learning_coefficient",
           "deep_linear_parameter_count"]


def _check_dims(dims: Sequence[int], rank: int) -> list[int]:
    dims = [int(d) for d in dims]
    if len(dims) < 2 or any(d < 1 for d in dims):
        raise InputError(f"need at least an input and an output width, all >= 1, got {dims}")
    if not 0 <= rank <= min(dims):
        raise InputError(f"the true rank must be in [0, min(widths) = {min(dims)}], got {rank}")
    return dims


def reduced_rank_regression_coefficient(input_dim: int, hidden: int, output_dim: int, rank: int) -> float:
    """lambda of y = B A x with A (H, M), B (N, H) and a true map of rank r (two-layer linear network).

    Args:
        input_dim: M. hidden: H. output_dim: N. rank: r <= min(M, H, N).

    Returns:
        lambda (float, an exact multiple of 1/8).

    Algorithm: the four cases of the closed form:
        1. N + r <= M + H, M + r <= N + H, H + r <= M + N:
           [2(H + r)(M + N) - (M - N)^2 - (H + r)^2 (+ 1 if M + H + N + r is odd)] / 8;
        2. M + H < N + r: [H M - H r + N r] / 2;
        3. N + H < M + r: [H N - H r + M r] / 2;
        4. M + N < H + r: M N / 2.

    Source: Aoyagi & Watanabe (2005), "Stochastic complexities of
    reduced rank regression in Bayesian estimation", Neural Networks 18,
    Main Theorem.
    """
    m, h, n = _check_dims([input_dim, hidden, output_dim], rank)
    r = rank
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2
    if m + n < h + r:
        return m * n / 2
    odd = (m + h + n + r) % 2
    return (2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2 + odd) / 8


def _aoyagi_subset(deltas: list[int]) -> list[int] | None:
    """The index set Sigma of Aoyagi's theorem: the l + 1 smallest Delta_j with
    max_Sigma Delta < min_rest Delta, sum_Sigma Delta >= l max_Sigma Delta and sum_Sigma Delta < l min_rest Delta."""
    order = sorted(range(len(deltas)), key=lambda j: deltas[j])
    for size in range(2, len(deltas) + 1):  # size = l + 1 >= 2 (l = 0 never satisfies the last condition)
        chosen, rest = order[:size], order[size:]
        ell = size - 1
        top = deltas[chosen[-1]]
        total = sum(deltas[j] for j in chosen)
        if rest and top >= deltas[rest[0]]:
            continue  # a tie across the cut: max_Sigma < min_rest fails
        if total >= ell * top and (not rest or total < ell * deltas[rest[0]]):
            return chosen
    return None


def deep_linear_learning_coefficient(widths: Sequence[int], rank: int) -> float:
    """lambda of a deep linear network y = W_L ... W_1 x with layer widths (H_1 = input, ..., H_{L+1} = output).

    Args:
        widths: (L + 1,) ints: input dimension, the L - 1 hidden widths, output dimension.
        rank: r, the rank of the true map (r <= every width).

    Returns:
        lambda (float).

    Algorithm: with Delta_j = H_j - r, take the index set Sigma (|Sigma| = l + 1)
    of Aoyagi's theorem (see _aoyagi_subset), S = sum_Sigma Delta_j,
    a = S - (ceil(S / l) - 1) l; then
        lambda = (r (H_1 + H_{L+1}) - r^2) / 2 + a (l - a) / (4 l)
                 - l (l - 1) / 4 (S / l)^2 + 1/2 sum_{i < j in Sigma} Delta_i Delta_j.
    Exact rational arithmetic; O(L^2).

    Source: Aoyagi (2024), "Consideration on the learning efficiency of
    multiple-layered neural networks with linear units", Neural Networks 172,
    Theorem 1 (as restated by Lau, Furman, Wang, Murfet & Wei 2023, "The
    local learning coefficient", Appendix on deep linear networks). For two
    layers it equals the reduced-rank regression formula of Aoyagi & Watanabe
    (2005); for one layer, M N / 2.
    """
    dims = _check_dims(widths, rank)
    if len(dims) == 2:
        return dims[0] * dims[1] / 2
    deltas = [d - rank for d in dims]
    chosen = _aoyagi_subset(deltas)
    if chosen is None:  # Aoyagi's Lemma: a subset always exists; reaching here is a bug
        raise InputError(f"no index set satisfies Aoyagi's conditions for widths {dims}, rank {rank}")
    ell = len(chosen) - 1
    total = sum(deltas[j] for j in chosen)
    a = total - (math.ceil(Fraction(total, ell)) - 1) * ell
    pairs = sum(deltas[i] * deltas[j] for x, i in enumerate(chosen) for j in chosen[x + 1:])
    value = (Fraction(rank * (dims[0] + dims[-1]) - rank**2, 2) + Fraction(a * (ell - a), 4 * ell)
             - Fraction(ell * (ell - 1), 4) * Fraction(total, ell) ** 2 + Fraction(pairs, 2))
    return float(value)


def deep_linear_parameter_count(widths: Sequence[int]) -> int:
    """d = sum_l H_l H_{l+1}, the number of weights (the regular model's lambda is d / 2)."""
    dims = _check_dims(widths, 0)
    return sum(a * b for a, b in zip(dims, dims[1:]))
