import numpy as np
import pytest
import torch

from lmech.phenomena.atlas import run_phenomenon
from lmech.phenomena.emergence import (
    PHENOMENON,
    TOLERANCE,
    non_embedding_parameters,
    power_law_forecast,
    runs,
    sequence_metrics,
    steepest_slope,
)
from lmech.models.family import build_model
from lmech.models.transformer import TransformerSpec
from lmech.store import Store

K = 16


def _synthetic():
    """Per-token loss an exact power law in N, accuracy exp(-loss) (0.94 -> 0.99), exact match p^k."""
    width = np.array([8, 12, 16, 24, 32], dtype=float)
    size = 28 * width**2
    loss = 110.0 * size**-1.0
    p = np.exp(-loss)
    prediction = {"k": K, "width": width, "parameters": size}
    measurement = {"width": width, "loss": loss, "accuracy": p, "exact_match": p**K, "exact_match_of_seed_p": p**K}
    return prediction, measurement


def test_independent_token_errors_pass():
    comparison = PHENOMENON.compare(*_synthetic())
    assert comparison.passed and comparison.error < 1e-12, comparison


def test_correlated_token_errors_fail():
    """Negative control: errors that strike all k tokens together make exact match = p, not p^k."""
    prediction, measurement = _synthetic()
    measurement["exact_match"] = measurement["accuracy"].copy()
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and comparison.error > TOLERANCE
    assert not comparison.details["exact_match_at_least_3x_steeper"]


def test_a_break_in_the_loss_curve_fails_the_forecast():
    prediction, measurement = _synthetic()
    measurement["loss"] = measurement["loss"].copy()
    measurement["loss"][-1] *= 0.8  # the largest model does 20% better than the trend
    comparison = PHENOMENON.compare(prediction, measurement)
    assert not comparison.passed and not comparison.details["loss_forecast_within_5pct"]


def test_forecast_and_slope_helpers():
    n = np.array([1.0, 10.0, 100.0, 1000.0])
    assert power_law_forecast(n, 2.0 * n**-0.5) == pytest.approx(2.0 * 1000**-0.5, rel=1e-10)
    assert steepest_slope(np.log(n), np.array([0.0, 0.1, 0.5, 0.6])) == pytest.approx(0.4 / np.log(10), rel=1e-12)


def test_sequence_metrics_against_hand_counts():
    logits = torch.full((3, 2, 4), -5.0)
    targets = torch.tensor([[0, 1], [2, 3], [1, 1]])
    predicted = torch.tensor([[0, 1], [2, 0], [0, 0]])  # rows: both right, one right, none right
    logits.scatter_(2, predicted[..., None], 5.0)
    loss, accuracy, exact = sequence_metrics(logits, targets)
    assert accuracy == pytest.approx(3 / 6) and exact == pytest.approx(1 / 3)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1)).item())


def test_specs_sweep_width_with_fresh_data_and_seed_ensembles():
    fast, full = runs(True), runs(False)
    assert len({s.model.width for s in fast}) >= 5 and len(full) > len(fast)
    assert len({s.seed for s in full}) >= 5 and all(s.task.length == K for s in fast + full)
    for spec in fast + full:  # one pass over the training sequences: the loss is not limited by a finite train set
        assert spec.task.n_train == spec.steps * spec.optimizer.batch_size
    steps = [next(s.steps for s in fast if s.model.width == w) for w in sorted({s.model.width for s in fast})]
    assert steps == sorted(steps) and steps[-1] > steps[0]  # larger models see more sequences


@pytest.mark.parametrize("width", [4, 6, 16])
def test_non_embedding_parameters_closed_form(width):
    """One block, one head, 4H MLP, biases: attention 4(H^2 + H), MLP 8H^2 + 5H, three layer norms 6H."""
    module = build_model(TransformerSpec(width=width, heads=1, depth=1, context=K), (K,), 128, 128, 0)
    total = sum(p.numel() for p in module.parameters())
    assert non_embedding_parameters(module) == 12 * width**2 + 15 * width
    assert total - non_embedding_parameters(module) == 2 * 128 * width + K * width  # embeddings + unembedding


@pytest.mark.slow
def test_fast_mode_passes_end_to_end(tmp_path):
    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    details = verdict.comparison.details
    assert verdict.comparison.error <= TOLERANCE and details["exact_match_at_least_3x_steeper"], verdict.comparison
    assert verdict.passed, verdict.comparison
