"""RunSpec.order_seed / order_switch_step: children share the parent's minibatch order before the
switch step and draw their own after it; unset, every run (its id, its batches, its losses) is as before."""

import hashlib
import json

import pytest
import torch

from lmech.seeding import generator
from lmech.spec import ModelSpec, OptimizerSpec, RunSpec, group_key
from lmech.train import train_ensemble
from lmech.train.loop import _minibatch_indices


def _reference_indices(specs, n, batch, steps):
    """The minibatch order as it was before order_seed existed (a verbatim re-statement)."""
    seeds = [s.seed for s in specs]
    shared = len(set(seeds)) == 1
    gens = [generator(seed, "minibatch-order") for seed in (seeds[:1] if shared else seeds)]
    per_epoch = max(n // batch, 1)
    for step in range(steps):
        position = step % per_epoch
        if position == 0:
            orders = torch.stack([torch.randperm(n, generator=g) for g in gens])
        chunk = orders[:, position * batch:(position + 1) * batch]
        yield chunk[0] if shared else chunk


def _spec(**update):
    base = RunSpec(model=ModelSpec(width=8, depth=1), optimizer=OptimizerSpec(lr=0.05, batch_size=16),
                   steps=30, observe={})
    return base.model_copy(update=update)


@pytest.mark.parametrize("seeds", [(0,), (0, 0), (0, 1, 0), (3, 4)])
def test_default_order_is_unchanged(seeds):
    specs = [_spec(seed=s) for s in seeds]
    new = list(_minibatch_indices(specs, 100, 16, 20))  # 6 batches an epoch: crosses 3 epochs
    old = list(_reference_indices(specs, 100, 16, 20))
    assert len(new) == len(old) == 20
    for a, b in zip(new, old):
        assert a.shape == b.shape and torch.equal(a, b)


def test_default_run_id_is_unchanged():
    spec = _spec(seed=2)
    tree = spec.model_dump(mode="json")
    assert tree["order_seed"] is None and tree["order_switch_step"] == 0  # settable: --set, sweep axes
    legacy = {k: v for k, v in tree.items() if k not in ("order_seed", "order_switch_step")}
    legacy = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    assert spec.id == hashlib.sha256(legacy.encode()).hexdigest()[:16]
    child = _spec(seed=2, order_seed=5, order_switch_step=3)
    assert child.id != spec.id and child.model_dump()["order_seed"] == 5
    assert RunSpec.model_validate(child.model_dump(mode="json")) == child  # round trip
    from lmech.spec import SweepSpec, expand_sweep

    sweep = SweepSpec(steps=5, observe={}, sweep={"order_seed": [1, 2], "order_switch_step": [0, 3]})
    assert sorted((r.order_seed, r.order_switch_step) for r in expand_sweep(sweep)) == [(1, 0), (1, 3), (2, 0), (2, 3)]


def test_orders_agree_before_the_switch_and_differ_after():
    k = 8
    specs = [_spec(seed=0), _spec(seed=0, order_seed=1, order_switch_step=k),
             _spec(seed=0, order_seed=2, order_switch_step=k)]
    batches = list(_minibatch_indices(specs, 100, 16, 20))
    assert all(b.shape == (3, 16) for b in batches)
    for step, b in enumerate(batches):
        if step < k:
            assert torch.equal(b[0], b[1]) and torch.equal(b[0], b[2]), step
        else:
            assert not torch.equal(b[1], b[2]) and not torch.equal(b[0], b[1]), step
    # after the switch each child sees fresh epochs: every example once per n // batch steps
    epoch = torch.cat([batches[k + i][1] for i in range(100 // 16)])
    assert len(set(epoch.tolist())) == len(epoch)


def test_children_train_identically_until_the_switch():
    from lmech.observables import make_observer
    from lmech.spec import ObserveSpec

    k, steps = 10, 30
    specs = [_spec(seed=0, steps=steps, order_seed=o, order_switch_step=k) for o in (1, 2)]
    assert group_key(specs[0]) == group_key(specs[1]) == group_key(_spec(seed=0, steps=steps))
    observer, when = make_observer({"loss": ObserveSpec(every=1)}, steps)
    results = train_ensemble(specs, observer, when)
    losses = [{s: v for s, name, v in r.rows if name == "loss/train"} for r in results]
    assert all(losses[0][s] == losses[1][s] for s in range(k + 1))  # bit-identical through step k
    assert all(losses[0][s] != losses[1][s] for s in range(k + 2, steps + 1))

