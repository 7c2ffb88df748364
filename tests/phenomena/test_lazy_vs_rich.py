"""lazy-vs-rich: the verdict logic on synthetic width sweeps with a known answer, the optimizer's tangent
kernel against a brute-force Jacobian, and --fast end to end."""

import math

import numpy as np
import pytest
import torch

from lmech.models.mlp import ModelSpec, init_params, plan_model
from lmech.instruments.ntk import ntk_gram
from lmech.phenomena import PHENOMENA, run_phenomenon
from lmech.phenomena.lazy_vs_rich import (
    NTK_TOLERANCE,
    PHENOMENON,
    compare,
    predict,
    runs,
    tangent_module,
)
from lmech.store import Store

torch.set_num_threads(1)

WIDTHS = np.asarray([128.0, 256.0, 512.0, 1024.0, 2048.0])


def _sweep(ntk_exponent: float, mup_exponent: float, *, ntk_kernel_exponent: float = -1.0,
           mup_kernel: float = 0.2, seed: int = 0) -> dict:
    """Power laws in width with +-3% multiplicative noise."""
    rng = np.random.default_rng(seed)
    noise = lambda: np.exp(rng.uniform(-0.03, 0.03, WIDTHS.shape))  # noqa: E731
    scale = WIDTHS / WIDTHS[0]
    zeros = np.zeros_like(WIDTHS)
    return {
        "ntk": {"width": WIDTHS, "distance": 0.05 * scale**ntk_exponent * noise(),
                "kernel_distance": 1e-3 * scale**ntk_kernel_exponent * noise(), "kernel_distance_se": zeros},
        "mup": {"width": WIDTHS, "distance": 0.12 * scale**mup_exponent * noise(),
                "kernel_distance": mup_kernel * noise(), "kernel_distance_se": zeros},
    }


PREDICTION = {"exponent": {"ntk": -0.5, "mup": 0.0}, "widths": WIDTHS.tolist()}


def test_lazy_ntk_and_rich_mup_pass():
    comparison = compare(PREDICTION, _sweep(-0.5, 0.0))
    assert comparison.passed, comparison.details
    assert comparison.details["ntk_slope"] == pytest.approx(-0.5, abs=0.05)
    assert comparison.details["mup_slope"] == pytest.approx(0.0, abs=0.05)


def test_steeper_ntk_decay_still_passes():
    # The prediction is an upper bound on the distance (one-sided): n^-1 is lazier still.
    assert compare(PREDICTION, _sweep(-1.0, 0.0)).passed


def test_ntk_slope_zero_fails():
    comparison = compare(PREDICTION, _sweep(0.0, 0.0))
    assert not comparison.passed
    assert comparison.error == pytest.approx(0.5, abs=0.05)


def test_shrinking_mup_distance_fails():
    comparison = compare(PREDICTION, _sweep(-0.5, -0.4))
    assert not comparison.passed
    assert not comparison.details["mup_ok"]


def test_kernel_ordering_fails_when_ntk_kernel_moves_more():
    comparison = compare(PREDICTION, _sweep(-0.5, 0.0, ntk_kernel_exponent=0.5, mup_kernel=1e-4))
    assert not comparison.passed
    assert not comparison.details["ntk_kernel_shrinks"]
    assert not comparison.details["kernel_ordered_at_largest_width"]


def test_prediction_shifted_past_tolerance_fails():
    measurement = _sweep(-0.5, 0.0)
    assert compare(PREDICTION, measurement).passed
    shifted = {"exponent": {"ntk": -0.5 - 1.5 * NTK_TOLERANCE, "mup": 0.0}, "widths": PREDICTION["widths"]}
    comparison = compare(shifted, measurement)
    assert not comparison.passed and comparison.error > NTK_TOLERANCE
    shifted_mup = {"exponent": {"ntk": -0.5, "mup": 0.3}, "widths": PREDICTION["widths"]}
    assert not compare(shifted_mup, measurement).passed


def test_missing_parameterization_fails():
    measurement = _sweep(-0.5, 0.0)
    del measurement["mup"]
    comparison = compare(PREDICTION, measurement)
    assert not comparison.passed and math.isinf(comparison.error)


def test_design_spans_16x_in_both_parameterizations():
    specs = runs(fast=True)
    for parameterization in ("ntk", "mup"):
        widths = sorted({s.model.width for s in specs if s.model.parameterization == parameterization})
        assert widths[-1] / widths[0] >= 16
    assert predict(specs)["exponent"] == {"ntk": -0.5, "mup": 0.0}


@pytest.mark.parametrize("parameterization", ["ntk", "mup"])
def test_tangent_kernel_is_lr_weighted_jacobian_product(parameterization):
    # Brute force: K = J diag(m) J^T with J the float64 Jacobian of the outputs w.r.t. all parameters.
    plan = plan_model(ModelSpec(width=32, depth=1, activation="tanh", parameterization=parameterization,
                                base_width=4), 3, 1, "sgd")
    params = {name: value[0].double() for name, value in init_params(plan, [7], [1.0]).items()}
    params["b0"] = params["b0"] + 0.1  # nonzero biases exercise every block
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    module = tangent_module(plan, params)
    kernel = ntk_gram(module, x).gram

    names = list(params)
    multipliers = plan.lr_multipliers()

    def f(*flat):
        from lmech.models.mlp import forward
        return forward(plan, {n: p.unsqueeze(0) for n, p in zip(names, flat)}, x)[0, :, 0]

    jac = torch.autograd.functional.jacobian(f, tuple(params[n] for n in names))
    brute = sum(multipliers[n] * j.reshape(6, -1) @ j.reshape(6, -1).T for n, j in zip(names, jac))
    assert parameterization == "ntk" or max(multipliers.values()) > 1  # the weighting is exercised
    error = torch.linalg.norm(kernel - brute) / torch.linalg.norm(brute)
    assert error < 1e-12  # float64 identity
    unweighted = sum(j.reshape(6, -1) @ j.reshape(6, -1).T for j in jac)
    if parameterization == "mup":  # negative control: the plain eNTK differs
        assert torch.linalg.norm(kernel - unweighted) / torch.linalg.norm(brute) > 1e-2


def test_registered():
    assert PHENOMENA["lazy-vs-rich"] is PHENOMENON


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison.details
    assert verdict.figure_png
