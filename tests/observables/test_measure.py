"""measure: dispatch by name equals direct instrument calls; tidy rows; JSON; input errors."""

import json

import pytest
import torch

from lmech.errors import InputError
from lmech.instruments.hessian_trace import hessian_trace
from lmech.observables import REGISTRY, measure
from lmech.instruments.ntk import ntk_gram
from lmech.instruments.sharpness import sharpness

from tests.instruments._reference import assert_untouched, ce, small_mlp, snapshot


def test_equals_direct_calls_and_leaves_model_untouched():
    model, batch = small_mlp(seed=0)
    before = snapshot(model)
    m = measure(model, ce, batch, ["sharpness", "hessian_trace", "ntk_gram"], seed=3,
                sharpness={"k": 2}, hessian_trace={"num_probes": 8})
    assert_untouched(model, before)
    assert list(m) == ["sharpness", "hessian_trace", "ntk_gram"] and len(m) == 3
    direct = sharpness(model, ce, batch, k=2, seed=3)
    # same seed, same float64 ops: bit-identical
    assert torch.equal(m["sharpness"].eigenvalues, direct.eigenvalues)
    assert m["hessian_trace"].estimate == hessian_trace(model, ce, batch, num_probes=8, seed=3).estimate
    assert torch.equal(m["ntk_gram"].gram, ntk_gram(model, batch[0]).gram)
    # negative control: another seed changes the Hutchinson estimate, so the equality above can fail
    other = measure(model, ce, batch, "hessian_trace", seed=4, hessian_trace={"num_probes": 8})
    assert other["hessian_trace"].estimate != m["hessian_trace"].estimate


def test_rows_are_tidy_scalars_and_json_is_keyed_by_name():
    model, batch = small_mlp(seed=1)
    m = measure(model, ce, batch, "sharpness, hessian_trace", sharpness={"k": 2},
                hessian_trace={"num_probes": 4})
    table = m.rows()
    assert all(isinstance(c, str) and isinstance(v, float) for c, v in table.items())
    assert all(c.split("/")[0] in ("sharpness", "hessian_trace") for c in table)  # <instrument>/<field>[/<i>]
    assert table["sharpness/eigenvalues/0"] == float(m["sharpness"].eigenvalues[0])
    assert table["sharpness/eigenvalues/1"] == float(m["sharpness"].eigenvalues[1])
    assert table["sharpness/error_bounds/0"] == float(m["sharpness"].error_bounds[0])
    assert table["hessian_trace/estimate"] == m["hessian_trace"].estimate
    assert "hessian_trace/samples/0" not in table  # arrays not named as vectors stay in to_json only
    assert m.headline("sharpness") == float(m["sharpness"].eigenvalues[0])
    j = json.loads(json.dumps(m.to_json()))
    assert set(j) == {"sharpness", "hessian_trace"}
    assert j["sharpness"]["eigenvalues"] == m["sharpness"].eigenvalues.tolist()
    assert len(j["hessian_trace"]["samples"]) == 4


def test_every_registered_instrument_runs_with_its_required_options():
    model, batch = small_mlp(seed=2)
    needs = {"preconditioned_sharpness": {"preconditioner": torch.ones(51, dtype=torch.float64)},
             "effective_dimensionality": {"z": 0.1, "k": 5},
             "gradient_noise_scale": {"small_batch": 4, "big_batch": 40, "num_pairs": 3},
             "local_learning_coefficient": {"num_chains": 2, "num_steps": 20, "num_burnin": 5},
             "loss_barrier": {"theta1": {n: 0.5 * p.detach() for n, p in model.named_parameters()}},
             "hessian_spectral_density": {"num_probes": 1, "lanczos_steps": 10, "grid_size": 50},
             "critical_batch_forecast": {"num_pairs": 3},
             "hessian_trace": {"num_probes": 4}}
    names = [n for n, e in REGISTRY.items() if e.scope == "model"]
    m = measure(model, ce, batch, names, seed=0, **needs)
    for name in names:
        value = m.headline(name)
        assert value is None or value == value, name  # headline present and not NaN where declared
    json.dumps(m.to_json())


def test_input_errors_name_the_problem():
    model, batch = small_mlp(seed=3)
    with pytest.raises(InputError, match="unknown observable 'no_such_thing'; known: .*sharpness"):
        measure(model, ce, batch, ["sharpness", "no_such_thing"])
    with pytest.raises(InputError, match="unknown option.*kk.*known: device, k, max_iter, mode"):
        measure(model, ce, batch, ["sharpness"], sharpness={"kk": 1})
    with pytest.raises(InputError, match="not requested"):
        measure(model, ce, batch, ["sharpness"], hessian_trace={"num_probes": 3})
    with pytest.raises(InputError, match="needs option.*z"):
        measure(model, ce, batch, ["effective_dimensionality"])
    with pytest.raises(InputError, match="twice"):
        measure(model, ce, batch, ["sharpness", "sharpness"])
