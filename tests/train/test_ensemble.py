"""An ensemble trains each member exactly as training it alone would."""

import pytest
import torch

from lmech.spec import ModelSpec, OptimizerSpec, RunSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.train import train_ensemble


def _specs(optimizer: str, batch_size):
    out = []
    for seed, lr, wd, scale, mult in [(0, 0.05, 0.0, 1.0, 1.0), (1, 0.02, 0.01, 0.5, 2.0),
                                      (2, 0.1, 0.0, 1.5, 0.5)]:
        out.append(RunSpec(
            model=ModelSpec(width=16, depth=2, init_scale=scale, output_multiplier=mult),
            optimizer=OptimizerSpec(name=optimizer, lr=lr if optimizer == "sgd" else lr / 10,
                                    weight_decay=wd, momentum=0.5 if optimizer == "sgd" else 0.0,
                                    batch_size=batch_size),
            steps=25, seed=seed, observe={}))
    return out


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_ensemble_equals_one_by_one(optimizer, batch_size):
    specs = _specs(optimizer, batch_size)
    together = train_ensemble(specs)
    for spec, member in zip(specs, together):
        alone = train_ensemble([spec])[0]
        for name, value in alone.final_params.items():
            # same float32 ops on a stacked batch: agreement to float32 rounding
            assert torch.allclose(member.final_params[name], value, rtol=1e-4, atol=1e-6), name


def test_members_with_their_own_data():
    base = RunSpec(task=GaussianRegressionSpec(n_train=20, input_dim=5), data_seed=None,
                   model=ModelSpec(depth=0, activation="linear", bias=False), steps=10, observe={})
    specs = [base.model_copy(update={"seed": s}) for s in (0, 1)]
    together = train_ensemble(specs)
    for spec, member in zip(specs, together):
        alone = train_ensemble([spec])[0]
        assert torch.allclose(member.final_params["W0"], alone.final_params["W0"], atol=1e-6)
    assert not torch.allclose(together[0].final_params["W0"], together[1].final_params["W0"])


@pytest.mark.parametrize("momentum", [0.0, 0.9])  # 0.9: the frozen member's momentum buffer is zeroed too
def test_divergence_is_recorded_and_spares_the_others(momentum):
    specs = [RunSpec(model=ModelSpec(width=16), optimizer=OptimizerSpec(lr=lr, momentum=momentum), steps=40,
                     observe={}) for lr in (0.05, 500.0)]
    from lmech.observables import make_observer

    observer, steps = make_observer({"loss": specs[0].observe.get("loss") or _every(5)}, 40)
    results = train_ensemble(specs, observer, steps)
    assert results[0].diverged_step is None
    assert results[1].diverged_step is not None and results[1].diverged_step < 40
    assert all(torch.isfinite(v).all() for v in results[0].final_params.values())
    alone = train_ensemble([specs[0]])[0]
    assert torch.allclose(alone.final_params["W0"], results[0].final_params["W0"], atol=1e-6)
    # the diverged member's rows stop at divergence
    assert max(step for step, _, _ in results[1].rows) <= results[1].diverged_step


def _every(n):
    from lmech.spec import ObserveSpec

    return ObserveSpec(every=n)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_chunked_step_equals_one_stacked_step(batch_size):
    specs = _specs("sgd", batch_size)
    whole = train_ensemble(specs, chunk_bytes=1 << 40)
    one_at_a_time = train_ensemble(specs, chunk_bytes=1)
    for a, b in zip(whole, one_at_a_time):
        for name in a.final_params:
            assert torch.allclose(a.final_params[name], b.final_params[name], rtol=1e-5, atol=1e-6), name
