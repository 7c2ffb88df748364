"""grokking-transformer: specs, the verdict on synthetic step tables with known answers, --fast end to end."""

import math

import numpy as np
import pytest

import torch

from lmech.errors import InputError
from lmech.models.family import build_model
from lmech.phenomena.grokking_transformer import (
    GENERALIZATION_THRESHOLD,
    LOGIT_SCALE,
    MIN_DELAY_RATIO,
    PHENOMENON,
    NandaTransformer,
    compare,
    delay_checks,
    measure,
    nanda_transformer,
    predict,
    runs,
)
from lmech.spec import group_key

INF = math.inf
PREDICTION = predict(runs(True))


def _measurement(mem, gen, decays=(0.5, 1.0, 2.0)):
    return {"weight_decays": list(decays), "memorization": np.asarray(mem, dtype=float),
            "generalization": np.asarray(gen, dtype=float), "curves": {}, "budget": 2000}


def test_fast_members_are_seeded_nanda_transformers_with_the_logit_scale():
    spec = runs(True)[0]
    first, again, other = (build_model(spec.model, (4,), 33, 33, seed) for seed in (0, 0, 1))
    assert isinstance(first, NandaTransformer) and first.logit_scale == LOGIT_SCALE
    assert torch.equal(first.query, again.query) and not torch.equal(first.query, other.query)


def test_fast_specs_are_one_ensemble_of_a_one_layer_transformer_on_tokens():
    specs = runs(True)
    assert len({group_key(s) for s in specs}) == 1
    assert all(s.model.kind == "factory" and s.model.factory.endswith(":nanda_transformer") for s in specs)
    assert all(s.task.name == "modular_arithmetic_tokens" and s.task.operation == "+" for s in specs)
    assert all(s.task.train_fraction <= 0.4 for s in specs)  # well under half of the equations
    assert all(s.optimizer.name == "adamw" and s.optimizer.batch_size is None for s in specs)
    assert all(s.optimizer.beta2 == 0.98 and s.optimizer.warmup_steps == 10 and s.optimizer.clip_norm == 1.0
               for s in specs)
    assert len({s.optimizer.weight_decay for s in specs}) >= 3 and min(s.optimizer.weight_decay for s in specs) > 0


def test_full_mode_is_the_bigger_experiment():
    assert sum(s.steps for s in runs(True)) <= sum(s.steps for s in runs(False))


def test_grokking_with_a_shrinking_delay_passes():
    c = compare(PREDICTION, _measurement([100, 100, 140], [1500, 900, 600]))
    assert c.passed, c
    assert c.error == pytest.approx(15.0)
    assert c.details["delays"] == [1400, 800, 460]


def test_delay_ratio_below_five_fails():
    c = compare(PREDICTION, _measurement([100, 100, 140], [400, 300, 250]))
    assert not c.passed and not c.details["baseline_ok"] and c.error == pytest.approx(4.0)


def test_delay_growing_with_weight_decay_fails():
    c = compare(PREDICTION, _measurement([100, 100, 100], [900, 1200, 1500]))
    assert not c.passed and c.details["baseline_ok"] and not c.details["delay_strictly_ordered"]


def test_a_tie_is_not_a_decrease():
    c = compare(PREDICTION, _measurement([100, 100, 100], [1500, 900, 900]))
    assert not c.passed and not c.details["delay_strictly_ordered"]


def test_never_generalizing_at_a_larger_weight_decay_fails():
    c = compare(PREDICTION, _measurement([100, 100, INF], [1500, 900, INF]))
    assert not c.passed and not c.details["all_generalized"]


def test_nothing_generalizes_fails():
    c = compare(PREDICTION, _measurement([100, 100, 100], [INF, INF, INF]))
    assert not c.passed and math.isnan(c.error)


def test_two_weight_decays_are_not_enough():
    c = compare(PREDICTION, _measurement([100, 100], [1500, 900], decays=(0.5, 1.0)))
    assert not c.passed and not c.details["enough_weight_decays"]


def test_prediction_reversed_or_tightened_fails():
    measurement = _measurement([100, 100, 140], [1500, 900, 600])
    assert compare(PREDICTION, measurement).passed
    assert not compare(dict(PREDICTION, weight_decay_order=1), measurement).passed
    assert not compare(dict(PREDICTION, min_delay_ratio=16.0), measurement).passed  # measured 15


def test_delay_checks_direct():
    checks = delay_checks([50, 60, 80], [500, 400, 300], MIN_DELAY_RATIO, -1, 3)
    assert checks["delay_ratio"] == pytest.approx(10.0)
    assert checks["delays"] == [450, 340, 220] and checks["delay_strictly_ordered"]


class _FakeStore:
    """accuracy series by run id: {id: (train, test)} with each a (steps, values) pair."""

    def __init__(self, series):
        self._series = series

    def series(self, run_id, metric):
        train, test = self._series[run_id]
        return train if metric == "accuracy/train" else test


def test_measure_uses_99_percent_train_and_95_percent_test_and_seed_medians():
    specs = runs(True)
    steps = [0, 20, 40, 60, 80]
    series = {}
    for spec in specs:  # train reaches 0.985 at 20 (not memorized) and 0.99 at 40; test 0.95 at 60 (seed 0: never)
        test = [0.0, 0.1, 0.5, GENERALIZATION_THRESHOLD, 0.96] if spec.seed else [0.0, 0.1, 0.5, 0.94, 0.949]
        series[spec.id] = ((steps, [0.5, 0.985, 0.99, 1.0, 1.0]), (steps, test))
    m = measure(_FakeStore(series), specs)
    assert m["weight_decays"] == sorted({s.optimizer.weight_decay for s in specs})
    assert m["memorization"].tolist() == [40.0] * 3 and m["generalization"].tolist() == [60.0] * 3
    series = {k: (tr, (te[0], [0.0] * 5)) if s.seed else (tr, te) for (k, (tr, te)), s in zip(series.items(), specs)}
    assert np.all(np.isinf(measure(_FakeStore(series), specs)["generalization"]))  # 2 of 3 seeds never: median never


@pytest.mark.slow
def test_fast_mode_passes_at_its_seeds(tmp_path):
    # Passes at seeds 0-2 only: seeds 3-5 of the same grid fail (module docstring, Status), which
    # is why the phenomenon is not registered in the atlas.
    from lmech.phenomena.atlas import run_phenomenon
    from lmech.store import Store

    verdict = run_phenomenon(PHENOMENON, Store(tmp_path), fast=True)
    assert verdict.passed, verdict.comparison
    assert verdict.figure_png


def _causal_no_layernorm_reference(net, x):
    """Every position of the same no-LN one-layer transformer, causal mask, loops over positions."""
    n, t = x.shape
    d = net.token_embedding.shape[1]
    a, e = net.heads, d // net.heads
    h = net.token_embedding[x] + net.position_embedding[:t]
    out = []
    for i in range(t):
        r = h[:, i].clone()
        for head in range(a):
            cols = slice(head * e, (head + 1) * e)
            q = h[:, i] @ net.query[:, cols]  # (N, E)
            k = h[:, : i + 1] @ net.key[:, cols]  # (N, i+1, E)
            v = h[:, : i + 1] @ net.value[:, cols]
            w = torch.softmax((k @ q[:, :, None])[..., 0] / math.sqrt(e), dim=-1)  # (N, i+1)
            r = r + (w[:, :, None] * v).sum(1) @ net.out[cols]
        r = r + torch.relu(r @ net.mlp_in + net.mlp_in_bias) @ net.mlp_out + net.mlp_out_bias
        out.append(r @ net.unembed)
    return torch.stack(out, dim=1)


def test_nanda_transformer_is_the_causal_transformer_at_the_answer_position():
    torch.manual_seed(0)
    net = nanda_transformer(11, width=16, heads=4, init_scale=1.5)
    with torch.no_grad():
        net.mlp_in_bias.normal_()
        net.mlp_out_bias.normal_()
    x = torch.randint(0, 11, (30, 4), generator=torch.Generator().manual_seed(1))
    logits = net(x)
    assert logits.shape == (30, 4, 11) and torch.count_nonzero(logits[:, :-1]) == 0
    torch.testing.assert_close(logits[:, -1], _causal_no_layernorm_reference(net, x)[:, -1], rtol=1e-5, atol=1e-5)
    assert not any("ln" in name or "norm" in name for name, _ in net.named_parameters())


def test_nanda_transformer_init_follows_the_scale_and_refuses_bad_heads():
    torch.manual_seed(0)
    small = nanda_transformer(25, width=32, init_scale=1.0)
    torch.manual_seed(0)
    large = nanda_transformer(25, width=32, init_scale=3.0)
    torch.testing.assert_close(large.query, 3.0 * small.query)
    assert float(small.token_embedding.detach().std()) == pytest.approx(32**-0.5, rel=0.15)
    with pytest.raises(InputError):
        NandaTransformer(25, width=30, heads=4)
