"""universality: the Gram-route CKA against the instrument, the interval and verdict on synthetic
representations (pass and fail), the specs, end to end."""

import numpy as np
import pytest
import torch

from lmech.instruments.cka import linear_cka
from lmech.models.cnn import CNNSpec
from lmech.models.family import build_model
from lmech.models.mlp import ModelSpec, forward, init_params, plan_model
from lmech.phenomena.universality import (
    PHENOMENON,
    centered_gram,
    cnn_representations,
    compare,
    debiased_cka_from_grams,
    mlp_representations,
    predict,
    runs,
    width_difference_interval,
)
from lmech.spec import group_key


def _reps(seed: int, noise: float, n: int = 200, d: int = 10) -> list[torch.Tensor]:
    """One shared signal (N, d) per 'layer' plus member-specific noise of size `noise`."""
    g = torch.Generator().manual_seed(1000)
    signal = [torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2)]
    own = torch.Generator().manual_seed(seed)
    return [s @ torch.linalg.qr(torch.randn(d, d, generator=own, dtype=torch.float64))[0]
            + noise * torch.randn(n, d, generator=own, dtype=torch.float64) for s in signal]


def test_gram_route_equals_the_instrument():
    a, b = _reps(1, 0.5), _reps(2, 0.5)
    for layer in range(2):
        expected = linear_cka(a[layer], b[layer], debiased=True).value
        assert abs(debiased_cka_from_grams(centered_gram(a[layer]), centered_gram(b[layer])) - expected) < 1e-10
        idx = np.arange(0, 200, 2)
        sub = linear_cka(a[layer][idx], b[layer][idx], debiased=True).value
        assert abs(debiased_cka_from_grams(centered_gram(a[layer]), centered_gram(b[layer]), idx) - sub) < 1e-10


def test_representations_reproduce_the_models_forward():
    x = torch.randn(30, 40, generator=torch.Generator().manual_seed(0))
    plan = plan_model(ModelSpec(width=16, depth=2), 40, 10, "sgd")
    params = {k: v[0] for k, v in init_params(plan, [3], [1.0]).items()}
    hidden = mlp_representations(plan, params, x)
    out = hidden[-1] @ params["W2"] + params["b2"].reshape(-1)
    assert torch.allclose(out, forward(plan, {k: v.unsqueeze(0) for k, v in params.items()}, x)[0], atol=1e-5)
    cnn = build_model(CNNSpec(width=8, depth=2), (40,), 10, None, 0)
    blocks = cnn_representations(cnn, x)
    with torch.no_grad():
        assert torch.allclose(cnn.readout(blocks[-1]), cnn(x), atol=1e-5)


def test_interval_excludes_zero_only_when_the_wide_members_agree_more():
    grams = lambda noise: [[centered_gram(h) for h in _reps(s, noise)] for s in range(3)]  # noqa: E731
    narrow, wide = grams(1.5), grams(0.3)
    lo, hi, _ = width_difference_interval(narrow, wide, replicates=60, level=0.95, seed=0)
    assert 0 < lo < hi
    lo, hi, _ = width_difference_interval(narrow, grams(1.5), replicates=60, level=0.95, seed=0)  # same noise: no effect
    assert lo < 0 < hi


def _measurement(narrow=0.8, wide=0.94, interval=(0.1, 0.13), cross=(0.9, 0.74), control=(0.0, 0.001), check=(0.5, 0.5)):
    return {"widths": [32, 128, 512], "seed_cka": {32: {"mean": narrow, "per_layer": [narrow] * 2},
                                                   128: {"mean": 0.86, "per_layer": [0.86] * 2},
                                                   512: {"mean": wide, "per_layer": [wide] * 2}},
            "interval": interval, "cross": {"cnn32": list(cross)}, "control": {"cnn32": list(control)},
            "instrument_check": check, "n_examples": 1000}


def test_compare_passes_on_the_predicted_pattern():
    c = compare(predict(runs(True)), _measurement())
    assert c.passed, c


@pytest.mark.parametrize("kwargs,check", [
    ({"interval": (-0.01, 0.03)}, "interval_excludes_zero"),
    ({"narrow": 0.95}, "wider_more_similar"),
    ({"cross": (0.9, 0.3)}, "cross_architecture_above_threshold"),
    ({"control": (0.2, 0.0)}, "control_below_max"),
    ({"check": (0.5, 0.6)}, "gram_route_matches_instrument"),
])
def test_compare_fails_on_each_broken_part(kwargs, check):
    c = compare(predict(runs(True)), _measurement(**kwargs))
    assert not c.passed and c.details[check] is False


def test_specs_one_job_per_width_and_fast_is_smaller():
    fast, full = runs(True), runs(False)
    assert len({group_key(s) for s in fast}) == len({(s.model.kind, s.model.width) for s in fast})
    work = lambda specs: sum(s.steps * s.model.width for s in specs)  # noqa: E731
    assert work(fast) <= work(full)
    assert predict(fast)["widest"] > predict(fast)["narrowest"]
    assert any(s.model.kind == "cnn" for s in fast)


@pytest.mark.slow
def test_end_to_end_fast(tmp_path):
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
