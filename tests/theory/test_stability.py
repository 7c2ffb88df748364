"""stability: thresholds vs actually running GD / momentum / frozen-preconditioner Adam on quadratics."""

import numpy as np
import pytest

from lmech.errors import InputError
from lmech.theory.stability import (
    adam_sharpness_threshold,
    gd_sharpness_threshold,
    momentum_sharpness_threshold,
    preconditioned_sharpness,
)

LR = 0.1
STEPS = 3000


def _rotated_hessian(eigs, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigs), len(eigs))))
    return q @ np.diag(eigs) @ q.T


def _run(h, step_fn, precond=None):
    """Final/initial distance to the minimum of f = x^T H x / 2 after STEPS updates."""
    x = np.ones(h.shape[0])
    m = np.zeros_like(x)
    p_inv = np.ones_like(x) if precond is None else 1.0 / precond
    for _ in range(STEPS):
        x, m = step_fn(x, m, p_inv * (h @ x))
        if np.max(np.abs(x)) > 1e12:
            return np.inf  # diverged; stop before float overflow
    return np.linalg.norm(x) / np.sqrt(h.shape[0])


def _gd(x, m, g):
    return x - LR * g, m


def _heavy_ball(beta):
    return lambda x, m, g: (x - LR * (beta * m + g), beta * m + g)


def _ema(beta):
    def step(x, m, g):
        m = beta * m + (1 - beta) * g
        return x - LR * m, m

    return step


# 1% either side: |growth factor| per step is ~0.98 or ~1.02, so 3000 steps give a
# ratio < 1e-10 (converged) or > 1e10 (diverged): no ambiguity near the margin.
BELOW, ABOVE = 0.99, 1.01


@pytest.mark.parametrize("dim", [1, 2])
def test_gd_converges_below_diverges_above(dim):
    thr = gd_sharpness_threshold(LR)
    assert thr == pytest.approx(20.0, rel=1e-15)
    for factor, converges in ((BELOW, True), (ABOVE, False)):
        eigs = [factor * thr] + [0.3 * thr] * (dim - 1)
        h = _rotated_hessian(eigs, seed=dim)
        ratio = _run(h, _gd)
        assert (ratio < 1e-6) == converges, (factor, ratio)


@pytest.mark.parametrize("ema", [False, True])
def test_momentum_threshold(ema):
    beta = 0.9
    thr = momentum_sharpness_threshold(LR, beta, ema=ema)
    step = _ema(beta) if ema else _heavy_ball(beta)
    for factor, converges in ((BELOW, True), (ABOVE, False)):
        h = _rotated_hessian([factor * thr, 0.1 * thr], seed=3)
        ratio = _run(h, step)
        assert (ratio < 1e-3) == converges, (factor, ratio)
    # Negative control: plain 2/lr is the wrong threshold for momentum (far too low).
    h = _rotated_hessian([1.5 * gd_sharpness_threshold(LR), 1.0], seed=4)
    assert _run(h, step) < 1e-3


def test_adam_frozen_preconditioner_threshold():
    beta1 = 0.9
    thr = adam_sharpness_threshold(LR, beta1)
    assert thr == pytest.approx(38.0 / LR, rel=1e-14)
    precond = np.array([3.0, 10.0])  # > 1, so raw sharpness exceeds preconditioned
    base = _rotated_hessian([1.0, 0.2], seed=5)
    base_sharp = preconditioned_sharpness(base, precond)
    for factor, converges in ((BELOW, True), (ABOVE, False)):
        h = base * (factor * thr / base_sharp)
        ratio = _run(h, _ema(beta1), precond=precond)
        assert (ratio < 1e-3) == converges, (factor, ratio)
    # Negative control: the raw sharpness is not what matters. Here raw lambda_max(H) is
    # far above the threshold, yet the preconditioned dynamics converge.
    h = base * (BELOW * thr / base_sharp)
    assert np.linalg.eigvalsh(h)[-1] > 1.5 * thr
    assert _run(h, _ema(beta1), precond=precond) < 1e-3


def test_preconditioned_sharpness_matches_nonsymmetric_eigs():
    h = _rotated_hessian([3.0, 1.0, 0.5], seed=6)
    p = np.array([0.2, 1.0, 5.0])
    ref = np.max(np.linalg.eigvals(np.diag(1 / p) @ h).real)  # independent: P^{-1} H directly
    assert abs(preconditioned_sharpness(h, p) - ref) / ref < 1e-12  # float64 eigensolvers


def test_rejects_bad_input():
    with pytest.raises(InputError):
        gd_sharpness_threshold(0.0)
    with pytest.raises(InputError):
        adam_sharpness_threshold(0.1, beta1=1.0)
    with pytest.raises(InputError):
        preconditioned_sharpness(np.eye(2), np.array([1.0, -1.0]))
