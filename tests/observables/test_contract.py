"""Contract suite: every registered trainer observable, on a run it applies to (the registry's
`example`), returns finite (K,) columns, is seed-deterministic, gives each member the same value
inside an ensemble as alone (K = 1 and K > 1), and leaves the parameters untouched."""

import pytest
import torch

from lmech.observables import OBSERVABLES
from lmech.spec import RunSpec
from lmech.train import train_ensemble

BASE = {"model": {"width": 8, "depth": 1}, "optimizer": {"lr": 0.05}, "steps": 2, "observe": {}}
OPTIONS = {"gradient_noise_scale": {"small_batch": 4, "big_batch": 64, "num_pairs": 2},
           "hessian_trace": {"num_probes": 4}}


def _merge(base: dict, extra: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def _measure(name: str, seeds: list[int]) -> dict[str, torch.Tensor]:
    observable = OBSERVABLES[name]
    specs = [RunSpec.model_validate(_merge(BASE, observable.example) | {"seed": s}) for s in seeds]
    captured = {}

    def observer(state):
        if state.step == 2:
            before = {n: p.detach().clone() for n, p in state.params.items()}
            captured.update(observable.function(state, **OPTIONS.get(name, {})))
            for n, p in state.params.items():
                assert torch.equal(p.detach(), before[n]), f"{name} changed parameter {n}"
        return {}

    train_ensemble(specs, observer, {2})
    return captured


@pytest.mark.parametrize("name", sorted(OBSERVABLES))
def test_observable_contract(name):
    together = _measure(name, [0, 1, 2])
    assert together, f"{name} returned no columns"
    for column, value in together.items():
        assert value.shape == (3,), (column, value.shape)
        if not (name == "accuracy" and torch.isnan(value).all()):
            assert torch.isfinite(value).all(), (column, value)
    again = _measure(name, [0, 1, 2])
    alone = _measure(name, [1])
    for column, value in together.items():
        assert torch.equal(value, again[column]), f"{column} is not seed-deterministic"
        # the same member alone vs inside an ensemble: float32 rounding of stacked ops
        assert torch.allclose(value[1:2].double(), alone[column].double(), rtol=1e-4, atol=1e-6), column
