"""edge-of-stability-transformer: specs, the shared verdict on synthetic trajectories, --fast end to end."""

import math

import numpy as np
import pytest
import torch

from lmech.models.transformer import TransformerSpec
from lmech.observables import REGISTRY
from lmech.phenomena.edge_of_stability import TOLERANCE
from lmech.phenomena.edge_of_stability_transformer import PHENOMENON, runs
from lmech.spec import ObserveSpec, group_key

torch.set_num_threads(1)


def _trajectory(threshold: float, plateau: float, *, start: float = 0.3, steps: int = 600, every: int = 20,
                seed: int = 0) -> dict:
    """Sharpness ramping from start to plateau (in units of the threshold) over 200 steps, then hovering
    (+-4%); a cross-entropy-like loss decaying to 1.3 with a 3% spike every 60 steps after step 200."""
    rng = np.random.default_rng(seed)
    s_steps = np.arange(0, steps + 1, every, dtype=float)
    ramp = start + (plateau - start) * np.minimum(s_steps / 200.0, 1.0)
    wobble = np.where(s_steps >= 200, 0.04 * rng.uniform(-1, 1, s_steps.shape), 0.0)
    l_steps = np.arange(0, steps + 1, 5, dtype=float)
    loss = 1.3 + np.exp(-l_steps / 100.0)
    loss[(l_steps > 200) & (l_steps % 60 == 0)] *= 1.03
    return {"steps": s_steps, "sharpness": threshold * (ramp + wobble), "loss_steps": l_steps, "loss": loss}


def _synthetic(plateaus: dict[str, float], **kwargs) -> tuple[dict, dict]:
    """(prediction from the fast specs, measurement with each setting's plateau ratio)."""
    prediction = PHENOMENON.predict(runs(True))
    measurement = {s["label"]: _trajectory(s["threshold"], plateaus.get(s["label"], 1.0), seed=i, **kwargs)
                   for i, s in enumerate(prediction["settings"])}
    return prediction, measurement


def test_fast_specs_are_gd_at_three_rates_and_adam_on_a_transformer_lm():
    specs = runs(True)
    assert all(isinstance(s.model, TransformerSpec) for s in specs)
    assert all(s.task.name == "markov_language" and s.loss is None for s in specs)  # the task's cross-entropy
    gd = [s for s in specs if s.optimizer.name == "sgd"]
    adam = [s for s in specs if s.optimizer.name == "adam"]
    assert len({s.optimizer.lr for s in gd}) == len(gd) >= 3 and len(adam) >= 1
    assert all(s.optimizer.batch_size is None and s.optimizer.momentum == 0 for s in specs)  # full-batch GD
    assert all("sharpness" in s.observe for s in gd) and all("preconditioned_sharpness" in s.observe for s in adam)
    assert len({group_key(s) for s in gd}) == 1  # the GD rates train as one ensemble
    for spec in specs:
        assert set(spec.observe) <= set(REGISTRY)


def test_full_mode_is_the_bigger_experiment():
    fast, full = runs(True), runs(False)
    assert sum(s.steps for s in fast) <= sum(s.steps for s in full)
    assert {s.optimizer.lr for s in fast} <= {s.optimizer.lr for s in full}


def test_the_chain_is_the_low_entropy_one_the_docstring_measured():
    """The design's Adam loss check depends on the chain's entropy rate (module docstring, Scope)."""
    from lmech.tasks.markov_language import make_markov_language

    spec = runs(True)[0]
    assert spec.task.concentration == 0.25
    entropy_rate = float(make_markov_language(spec.task, spec.seed).extras["entropy_rate"])
    assert entropy_rate == pytest.approx(1.017, abs=5e-4)  # 3 decimals as quoted; log 8 = 2.079 is the uniform chain


def test_predict_is_two_over_lr_and_38_over_lr():
    specs = runs(True)
    for spec, setting in zip(specs, PHENOMENON.predict(specs)["settings"]):
        expected = 2.0 / spec.optimizer.lr if spec.optimizer.name == "sgd" else 38.0 / spec.optimizer.lr
        assert setting["threshold"] == pytest.approx(expected, rel=1e-12)


def test_hovering_at_the_thresholds_passes():
    prediction, measurement = _synthetic({})
    comparison = PHENOMENON.compare(prediction, measurement)
    assert comparison.passed, comparison.details
    assert comparison.error < 0.05


def test_hovering_fifteen_percent_above_fails():
    """The negative control: memorizing transformers hovered at 1.1-1.4 x 2/lr; 1.15 must fail."""
    prediction, measurement = _synthetic({s["label"]: 1.15 for s in PHENOMENON.predict(runs(True))["settings"]})
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and comparison.error > TOLERANCE


def test_adam_alone_off_its_threshold_fails():
    prediction = PHENOMENON.predict(runs(True))
    adam = next(s["label"] for s in prediction["settings"] if s["optimizer"] == "adam")
    _, measurement = _synthetic({adam: 0.6})  # never reaches 38/lr
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and math.isinf(comparison.error)
    assert not comparison.details[adam]["passed"]
    assert all(d["passed"] for label, d in comparison.details.items() if label != adam)


def test_starting_above_the_threshold_fails():
    prediction, measurement = _synthetic({}, start=1.3)  # a catapult, not progressive sharpening
    assert not PHENOMENON.compare(prediction, measurement).passed


def test_preconditioned_sharpness_is_observed_on_a_transformer(tmp_path):
    """Regression: the Adam preconditioner's names were the MLP's ("weights.<name>"): KeyError here."""
    from lmech.engine import execute
    from lmech.store import Store

    spec = runs(True)[-1]
    assert spec.optimizer.name == "adam"
    short = spec.model_copy(update={"steps": 4, "observe": {"preconditioned_sharpness": ObserveSpec(every=2)}})
    store = Store(tmp_path)
    execute([short], store, executor="local", workers=1, sweep="test")
    steps, values = store.series(short.id, "preconditioned_sharpness/eigenvalues/0")
    finite = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    assert [s for s, _ in finite] == [2, 4] and all(v > 0 for _, v in finite)


@pytest.mark.slow
def test_fast_mode_passes(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison.details
    assert verdict.figure_png
