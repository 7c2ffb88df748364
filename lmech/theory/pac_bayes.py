"""PAC-Bayes bounds on the error of a Gaussian posterior over network weights (pure numbers, no training).

One job: the kl-form PAC-Bayes bound of Langford-Seeger / Maurer with a Monte-Carlo estimate of
the posterior's empirical error (Dziugaite & Roy 2017), for diagonal Gaussian prior and posterior,
with a union bound over a grid of posterior scales. It ignores Catoni's and McAllester's linear
forms (McAllester's square-root relaxation is given only as a check) and any optimization of the
posterior mean.

The bound, stated exactly (0-1 loss, n i.i.d. examples S, a prior P fixed before seeing S):

    with probability >= 1 - delta over S, for every posterior Q simultaneously,
        kl(e_S(Q) || e(Q)) <= (KL(Q || P) + ln(2 sqrt(n) / delta)) / n          (Maurer 2004, Thm. 5)

where e_S(Q) and e(Q) are the empirical and true errors of the Gibbs classifier drawn from Q and
kl(q || p) is the KL divergence between Bernoulli(q) and Bernoulli(p). e_S(Q) is estimated from m
weight draws; with probability >= 1 - delta' over those draws kl(ê || e_S(Q)) <= ln(2 / delta') / m
(Langford & Caruana 2001, Thm. 2.5). Both together, with probability >= 1 - delta - delta':

    e(Q) <= kl^-1( kl^-1(ê, ln(2/delta') / m),  (KL(Q || P) + ln(2 sqrt(n) / delta)) / n )

with kl^-1(q, c) = sup{p in [q, 1] : kl(q || p) <= c} (Dziugaite & Roy 2017, eq. 5 and Sec. 3).
For a grid of J prior/posterior scales sigma_j fixed in advance, each is used with delta / J and
delta' / J (a union bound), so the smallest of the J bounds holds with probability >= 1 - delta - delta'.
"""

import math

import numpy as np

__all__ = ["bernoulli_kl", "kl_inverse_upper", "gaussian_kl_diagonal", "maurer_bound",
           "sample_convergence_bound", "gibbs_error_bound", "mcallester_relaxation"]

_BISECTION_STEPS = 100  # halves [q, 1] 100 times: below 1e-30, past float64 resolution


def bernoulli_kl(q: float, p: float) -> float:
    """kl(q || p) = q ln(q/p) + (1-q) ln((1-q)/(1-p)) in nats, for q, p in [0, 1] (0 ln 0 = 0; +inf off support)."""
    if not (0.0 <= q <= 1.0 and 0.0 <= p <= 1.0):
        raise ValueError(f"need q, p in [0, 1], got q={q}, p={p}")
    out = 0.0
    for a, b in ((q, p), (1.0 - q, 1.0 - p)):
        if a > 0.0:
            if b <= 0.0:
                return math.inf
            out += a * math.log(a / b)
    return out


def kl_inverse_upper(q: float, c: float) -> float:
    """kl^-1(q, c) = the largest p in [q, 1] with kl(q || p) <= c.

    Args:
        q: empirical error in [0, 1].
        c: budget in nats, >= 0.

    Algorithm: bisection on [q, 1], where p -> kl(q || p) is continuous and increasing; 100
    halvings (the returned p is the bracket's upper end, so it never undershoots the inverse).
    Cost: 100 evaluations of kl.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"need q in [0, 1], got {q}")
    if not c >= 0.0:
        raise ValueError(f"need c >= 0, got {c}")
    if q >= 1.0 or bernoulli_kl(q, 1.0) <= c:
        return 1.0
    lo, hi = q, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if bernoulli_kl(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def gaussian_kl_diagonal(mean_q: np.ndarray, mean_p: np.ndarray, sigma_q, sigma_p) -> float:
    """KL(N(mean_q, diag sigma_q^2) || N(mean_p, diag sigma_p^2)) in nats.

    = sum_i [ (mean_q,i - mean_p,i)^2 / (2 sigma_p,i^2) + (r_i - 1 - ln r_i) / 2 ] with r_i = sigma_q,i^2 / sigma_p,i^2.
    mean_q, mean_p: (P,) arrays; sigma_q, sigma_p: positive standard deviations, scalars or (P,)
    arrays (parameter units). With sigma_q = sigma_p the second term vanishes.
    """
    mq, mp = np.asarray(mean_q, dtype=np.float64).ravel(), np.asarray(mean_p, dtype=np.float64).ravel()
    if mq.shape != mp.shape:
        raise ValueError(f"means differ in size: {mq.shape} vs {mp.shape}")
    sq = np.broadcast_to(np.asarray(sigma_q, dtype=np.float64).ravel(), mq.shape)
    sp = np.broadcast_to(np.asarray(sigma_p, dtype=np.float64).ravel(), mq.shape)
    if not (np.all(sq > 0) and np.all(sp > 0)):
        raise ValueError("need every sigma_q, sigma_p > 0")
    ratio = (sq / sp) ** 2
    return float(np.sum((mq - mp) ** 2 / (2 * sp**2)) + 0.5 * np.sum(ratio - 1.0 - np.log(ratio)))


def maurer_bound(empirical_error: float, kl: float, n: int, delta: float) -> float:
    """kl^-1(e_S, (KL + ln(2 sqrt(n) / delta)) / n): the true Gibbs error bound of Maurer (2004), Thm. 5."""
    _check(n, delta)
    if not kl >= 0:
        raise ValueError(f"need KL >= 0, got {kl}")
    return kl_inverse_upper(empirical_error, (kl + math.log(2 * math.sqrt(n) / delta)) / n)


def sample_convergence_bound(mc_error: float, m: int, delta: float) -> float:
    """kl^-1(ê, ln(2 / delta) / m): an upper bound on e_S(Q) from m posterior draws (Langford & Caruana 2001)."""
    _check(m, delta)
    return kl_inverse_upper(mc_error, math.log(2 / delta) / m)


def gibbs_error_bound(mc_error: float, m: int, kl: float, n: int, delta: float, delta_prime: float) -> float:
    """The bound of the module docstring: e(Q) <= kl^-1(kl^-1(ê, ln(2/δ')/m), (KL + ln(2√n/δ))/n).

    Holds with probability >= 1 - delta - delta_prime over the n examples and the m draws.
    """
    return maurer_bound(sample_convergence_bound(mc_error, m, delta_prime), kl, n, delta)


def mcallester_relaxation(empirical_error: float, kl: float, n: int, delta: float) -> float:
    """e_S + sqrt((KL + ln(2 sqrt(n) / delta)) / (2 n)): Pinsker's relaxation of `maurer_bound` (never tighter)."""
    _check(n, delta)
    return empirical_error + math.sqrt((kl + math.log(2 * math.sqrt(n) / delta)) / (2 * n))


def _check(n: int, delta: float) -> None:
    if not (isinstance(n, int | np.integer) and n >= 1):
        raise ValueError(f"need a sample size n >= 1, got {n}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"need delta in (0, 1), got {delta}")
