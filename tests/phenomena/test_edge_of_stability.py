"""edge-of-stability: the verdict logic on synthetic trajectories with a known answer, and --fast end to end."""

import math

import numpy as np
import pytest
import torch

from lmech.phenomena import PHENOMENA, run_phenomenon
from lmech.phenomena.edge_of_stability import PHENOMENON, TOLERANCE, compare, predict, runs
from lmech.store import Store

torch.set_num_threads(1)


def _trajectory(lr: float, plateau: float, *, start: float = 0.3, steps: int = 800, every: int = 20,
                seed: int = 0) -> dict:
    """Sharpness rising linearly from start*2/lr to plateau*2/lr over 300 steps, then hovering (+-3%);
    a loss that decays with a spike every 100 steps after step 300."""
    rng = np.random.default_rng(seed)
    threshold = 2.0 / lr
    s_steps = np.arange(0, steps + 1, every, dtype=float)
    ramp = start + (plateau - start) * np.minimum(s_steps / 300.0, 1.0)
    wobble = np.where(s_steps >= 300, 0.03 * rng.uniform(-1, 1, s_steps.shape), 0.0)
    l_steps = np.arange(0, steps + 1, 5, dtype=float)
    loss = np.exp(-l_steps / 200.0)
    loss[(l_steps > 300) & (l_steps % 100 == 0)] *= 1.5
    return {"steps": s_steps, "sharpness": threshold * (ramp + wobble), "loss_steps": l_steps, "loss": loss}


def _prediction(lrs):
    return {"settings": [{"label": f"GD lr={lr:g}", "optimizer": "sgd", "lr": lr, "threshold": 2.0 / lr,
                          "quantity": "sharpness"} for lr in lrs]}


LRS = [0.2, 0.3, 0.4]


def test_hovering_at_threshold_passes():
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 1.02, seed=i) for i, lr in enumerate(LRS)}
    comparison = compare(_prediction(LRS), measurement)
    assert comparison.passed, comparison.details
    assert comparison.error < 0.05


def test_plateau_below_threshold_fails():
    # Sharpness that saturates at 0.7 * 2/lr never crosses: no edge of stability.
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 0.7) for lr in LRS}
    comparison = compare(_prediction(LRS), measurement)
    assert not comparison.passed
    assert math.isinf(comparison.error)


def test_overshoot_fails():
    # Crossing 2/lr and settling at 1.3 * 2/lr is not hovering at the threshold.
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 1.3) for lr in LRS}
    comparison = compare(_prediction(LRS), measurement)
    assert not comparison.passed
    assert comparison.error > TOLERANCE


def test_prediction_shifted_past_tolerance_fails():
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 1.0, seed=i) for i, lr in enumerate(LRS)}
    assert compare(_prediction(LRS), measurement).passed
    shifted = _prediction(LRS)
    for setting in shifted["settings"]:
        setting["threshold"] *= 1 + 1.5 * TOLERANCE  # predicted threshold 15% too high
    comparison = compare(shifted, measurement)
    assert not comparison.passed
    assert comparison.error > TOLERANCE


def test_starting_above_threshold_fails():
    # A catapult from an initial sharpness above 2/lr is not progressive sharpening.
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 1.0, start=1.5) for lr in LRS}
    comparison = compare(_prediction(LRS), measurement)
    assert not comparison.passed
    assert all(d["first_ratio"] > 1 for d in comparison.details.values())


def test_monotone_loss_fails():
    measurement = {}
    for lr in LRS:
        series = _trajectory(lr, 1.0)
        series["loss"] = np.exp(-series["loss_steps"] / 200.0)  # no spikes at all
        measurement[f"GD lr={lr:g}"] = series
    comparison = compare(_prediction(LRS), measurement)
    assert not comparison.passed
    assert not any(d["loss_non_monotone"] for d in comparison.details.values())


def test_missing_setting_fails():
    measurement = {f"GD lr={lr:g}": _trajectory(lr, 1.0) for lr in LRS[:2]}
    assert not compare(_prediction(LRS), measurement).passed


def test_predict_uses_the_stability_thresholds():
    specs = runs(fast=True)
    settings = predict(specs)["settings"]
    assert {s["optimizer"] for s in settings} == {"sgd", "adam"}
    for spec, setting in zip(specs, settings):
        lr = spec.optimizer.lr
        expected = 2.0 / lr if spec.optimizer.name == "sgd" else 38.0 / lr  # beta1 = 0.9
        assert setting["threshold"] == pytest.approx(expected, rel=1e-12)
    gd = [s for s in specs if s.optimizer.name == "sgd"]
    assert len(gd) >= 3 and len({s.optimizer.lr for s in gd}) == len(gd)


def test_registered():
    assert PHENOMENA["edge-of-stability"] is PHENOMENON


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison.details
    assert verdict.figure_png
