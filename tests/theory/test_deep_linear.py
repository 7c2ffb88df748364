"""deep_linear: closed form vs a numerical ODE solve and vs real discrete GD in float64."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from lmech.errors import InputError
from lmech.theory.deep_linear import mode_strength_trajectory, time_to_learn

S_VALUES = np.array([3.0, 2.0, 1.0])
U0 = 1e-3


def _reduced_ode(s, u0, flow_times):
    """Saxe et al.'s 2-d mode dynamics da/dT = b(s - ab), db/dT = a(s - ab), u = ab."""

    def rhs(_, z):
        a, b = z
        return [b * (s - a * b), a * (s - a * b)]

    sol = solve_ivp(rhs, (0.0, flow_times[-1]), [np.sqrt(u0)] * 2, t_eval=flow_times,
                    method="DOP853", rtol=1e-12, atol=1e-14)
    assert sol.success
    return sol.y[0] * sol.y[1]


def test_closed_form_matches_ode_integration():
    lr = 0.01
    steps = np.linspace(0.0, 800.0, 81)
    u = mode_strength_trajectory(S_VALUES, U0, steps, lr)
    assert u.shape == (81, 3)
    for r, s in enumerate(S_VALUES):
        ref = _reduced_ode(s, U0, steps * lr)
        # 1e-8 relative: DOP853 at rtol 1e-12 over a 1e3-fold growth phase.
        np.testing.assert_allclose(u[:, r], ref, rtol=1e-8, atol=0)


def test_zero_singular_value_limit():
    steps = np.array([0.0, 10.0, 1e4])
    u = mode_strength_trajectory(np.array([0.0, 1e-300]), U0, steps, 0.1)
    expected = U0 / (1 + 2 * U0 * steps * 0.1)  # exact solution of du/dT = -2u^2
    np.testing.assert_allclose(u[:, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(u[:, 1], expected, rtol=1e-12)


def _gd_mode_strengths(lr, n_steps, record_every):
    """Discrete GD on W2 W1 with L = 1/(2N) sum ||y - W2 W1 x||^2, float64, torch autograd."""
    g = torch.Generator().manual_seed(0)
    n, d, c, h = 8, 4, 3, 5
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    x = q * np.sqrt(n)  # X^T X / N = I exactly
    u_mat, _ = torch.linalg.qr(torch.randn(c, 3, generator=g, dtype=torch.float64))
    v_mat, _ = torch.linalg.qr(torch.randn(d, 3, generator=g, dtype=torch.float64))
    target = u_mat @ torch.diag(torch.tensor(S_VALUES)) @ v_mat.T  # Sigma_yx
    y = x @ target.T
    r_mat, _ = torch.linalg.qr(torch.randn(h, 3, generator=g, dtype=torch.float64))
    w1 = (np.sqrt(U0) * r_mat @ v_mat.T).requires_grad_(True)
    w2 = (np.sqrt(U0) * u_mat @ r_mat.T).requires_grad_(True)
    out = []
    for step in range(n_steps + 1):
        if step % record_every == 0:
            with torch.no_grad():
                out.append(torch.diagonal(u_mat.T @ w2 @ w1 @ v_mat).numpy().copy())
        loss = 0.5 * ((y - x @ w1.T @ w2.T) ** 2).sum(dim=1).mean()
        g1, g2 = torch.autograd.grad(loss, (w1, w2))
        with torch.no_grad():
            w1 -= lr * g1
            w2 -= lr * g2
    return np.array(out)


LRS = (3.75e-3, 1.875e-3)
FLOW_END = 6.0  # time units: every mode (s >= 1, u0 = 1e-3) is past its transition


@pytest.fixture(scope="module")
def gd_runs():
    """{lr: (steps (S,), u_gd (S, 3))} for the two step sizes, 40 snapshots each."""
    runs = {}
    for lr in LRS:
        n_steps = int(round(FLOW_END / lr))
        every = n_steps // 40
        u_gd = _gd_mode_strengths(lr, n_steps, every)
        runs[lr] = (np.arange(u_gd.shape[0]) * every, u_gd)
    return runs


def _max_rel_err(steps, u_gd, u0, lr_in_theory):
    u_th = mode_strength_trajectory(S_VALUES, u0, steps, lr_in_theory)
    return np.max(np.abs(u_gd - u_th) / S_VALUES)


def test_matches_discrete_gd_with_first_order_error(gd_runs):
    errs = [_max_rel_err(*gd_runs[lr], U0, lr) for lr in LRS]
    # Discretisation error O(lr * s): measured 8.3e-3 at lr=3.75e-3 (2.1e-3 at 1e-3); 1.5e-2 bounds it.
    assert errs[0] < 1.5e-2
    # GD is a first-order scheme for the flow: halving lr halves the error.
    assert 1.6 < errs[0] / errs[1] < 2.4


def test_negative_control_wrong_convention_fails(gd_runs):
    lr = LRS[0]
    # Forgetting the 1/2 in the loss (flow time 2 t lr) must fail the same tolerance (measured 0.88).
    assert _max_rel_err(*gd_runs[lr], U0, 2 * lr) > 1.5e-2
    # So must a 4x wrong initial strength (measured 0.34).
    assert _max_rel_err(*gd_runs[lr], 4 * U0, lr) > 1.5e-2


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_time_to_learn_inverts_trajectory(fraction):
    s, lr = 2.0, 0.01
    t = time_to_learn(s, U0, lr, fraction)
    u = mode_strength_trajectory(np.array([s]), U0, np.array([t]), lr)[0, 0]
    assert abs(u - fraction * s) < 1e-12  # exact inverse, float64 rounding only
    # Independent: the time at which the ODE solution crosses fraction*s.
    sol = solve_ivp(lambda _, z: [z[1] * (s - z[0] * z[1]), z[0] * (s - z[0] * z[1])],
                    (0, 100), [np.sqrt(U0)] * 2, events=lambda _, z: z[0] * z[1] - fraction * s,
                    rtol=1e-12, atol=1e-14, method="DOP853")
    assert abs(sol.t_events[0][0] / lr - t) / t < 1e-8


def test_rejects_bad_input():
    with pytest.raises(InputError):
        time_to_learn(1.0, 0.6, 0.1, 0.5)  # already past target
    with pytest.raises(InputError):
        time_to_learn(1.0, 1e-3, 0.1, 1.0)
    with pytest.raises(InputError):
        mode_strength_trajectory(np.array([1.0]), 0.0, np.array([1.0]), 0.1)
    with pytest.raises(InputError):
        mode_strength_trajectory(np.array([-1.0]), 1e-3, np.array([1.0]), 0.1)
