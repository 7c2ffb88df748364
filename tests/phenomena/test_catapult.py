"""catapult: the regime classifier and the boundary verdict on synthetic runs (pass and fail cases), the
closed-form λ0 against the sharpness instrument, the spec, and --fast end to end."""

import math

import numpy as np
import pytest
import torch

from lmech.instruments.losses import named_loss
from lmech.instruments.sharpness import sharpness
from lmech.models.mlp import MemberModule, ModelSpec, init_params, plan_model
from lmech.phenomena.catapult import (_GRID_FAST, PHENOMENON, TOLERANCE, classify, compare, linear_ntk_sharpness, predict,
                                      runs)
from lmech.spec import group_key

torch.set_num_threads(1)


def _lazy(steps=60):
    return list(1.6 * np.exp(-0.1 * np.arange(steps + 1)) + 0.02)


def _catapult(steps=60):
    t = np.arange(steps + 1)
    return list(1.6 * np.exp(-0.1 * t) + 0.02 + 40.0 * np.exp(-((t - 8) / 3.0) ** 2))


def _run(c, regime, lam=0.5):
    return {"lr": c / lam, "lambda0": lam, "c": c, "sharpness_end": lam, "loss": [1.0], "regime": regime}


def _measurement(lower=2.0, upper=4.0, grid=_GRID_FAST, lam=0.5):
    rows = [_run(c, "lazy" if c < lower else "catapult" if c < upper else "divergent", lam) for c in grid]
    return {0: rows}


PREDICTION = {"lower": 2.0, "upper": 4.0, "lambda0_theory": 0.5}


def test_classify_the_three_regimes():
    lam = 0.5
    assert classify(_lazy(), False, 1.5 / lam, lam, 0.99 * lam) == "lazy"
    assert classify(_catapult(), False, 3.0 / lam, lam, 0.3) == "catapult"
    assert classify(_lazy()[:10] + [math.inf], True, 5.0 / lam, lam, math.nan) == "divergent"
    assert classify(list(np.linspace(1.6, 3.0, 20)), False, 5.0 / lam, lam, math.nan) == "divergent"


def test_classify_refuses_what_fits_no_regime():
    lam = 0.5
    # monotone but the sharpness moved by 30%: not lazy, and no spike: not a catapult
    assert classify(_lazy(), False, 1.5 / lam, lam, 0.7 * lam) == "other"
    # a spike whose final sharpness stays above 2/lr: not the catapult's flattening
    assert classify(_catapult(), False, 3.0 / lam, lam, 1.2 * (2 * lam / 3.0)) == "other"


def test_boundaries_at_prediction_pass():
    comparison = compare(PREDICTION, _measurement())
    assert comparison.passed, comparison.details
    assert comparison.error < 0.08  # grid resolution around 2 and 4


def test_upper_edge_too_low_fails():
    # divergence from c = 3.2 on (20% below 4): the measured edge moves past grid points
    comparison = compare(PREDICTION, _measurement(upper=3.2))
    assert not comparison.passed and comparison.error > TOLERANCE


def test_lower_edge_too_high_fails():
    comparison = compare(PREDICTION, _measurement(lower=2.5))
    assert not comparison.passed and comparison.error > TOLERANCE


def test_interleaved_regimes_and_missing_regime_fail():
    m = _measurement()
    m[0][2] = _run(1.85, "catapult")
    m[0][3] = _run(2.15, "lazy")
    assert not compare(PREDICTION, m).details["regimes_ordered"]
    assert not compare(PREDICTION, m).passed
    no_divergence = _measurement(upper=10.0)
    assert not compare(PREDICTION, no_divergence).passed


def test_lambda_far_from_theory_fails():
    comparison = compare(PREDICTION, _measurement(lam=0.6))
    assert not comparison.passed and not comparison.details["lambda0_matches_theory"]


def test_closed_form_lambda0_matches_lanczos_on_a_wide_network():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=g)
    y = torch.randn(12, 1, generator=g)
    theory = linear_ntk_sharpness(x)
    spec = ModelSpec(width=8192, depth=1, activation="linear", bias=False, parameterization="ntk")
    plan = plan_model(spec, 4, 1, "sgd")
    for width_ok, member_seed in ((True, 0), (True, 1)):
        module = MemberModule(plan, init_params(plan, [member_seed], [1.0], False), 0)
        measured = float(sharpness(module, named_loss("mse"), (x, y), rel_tol=1e-6).eigenvalues[0])
        assert abs(measured / theory - 1) < 0.05, (measured, theory)  # O(H^-1/2) = 1% corrections at H = 8192
    narrow = plan_model(spec.model_copy(update={"width": 2}), 4, 1, "sgd")
    module = MemberModule(narrow, init_params(narrow, [0], [1.0], False), 0)
    measured = float(sharpness(module, named_loss("mse"), (x, y), rel_tol=1e-6).eigenvalues[0])
    assert abs(measured / theory - 1) > 0.05  # negative control: at width 2 the kernel is not the limit


def test_spec_is_one_ensemble_around_the_edges():
    for fast in (True, False):
        specs = runs(fast)
        assert len({group_key(s) for s in specs}) == 1
        lam = predict(specs)["lambda0_theory"]
        cs = sorted({round(s.optimizer.lr * lam, 6) for s in specs})
        assert cs[0] < 2 * (1 - TOLERANCE) and cs[-1] > 4 * (1 + TOLERANCE)
        assert all(s.optimizer.batch_size is None and s.loss == "mse" for s in specs)
    assert sum(s.steps for s in runs(True)) <= sum(s.steps for s in runs(False))


@pytest.mark.slow
def test_fast_end_to_end(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
