"""Contract for the sequence and generated tasks: each default spec builds, round-trips through the
TaskSpec union, has the declared shapes and dtypes, token ids inside the vocabulary, targets that
are tokens or IGNORE_INDEX with at least one scored position per example, and seeded data."""

import pytest
import torch
from pydantic import TypeAdapter

from lmech.tasks import IGNORE_INDEX, TASK_NAMES, TaskSpec, default_task_spec, make_task

NAMES = ["modular_arithmetic_tokens", "markov_language", "quanta", "associative_recall", "in_context_regression",
         "python_source", "mnist1d"]


@pytest.mark.parametrize("name", NAMES)
def test_default_spec_contract(name):
    assert name in TASK_NAMES
    spec = default_task_spec(name)
    assert TypeAdapter(TaskSpec).validate_json(spec.model_dump_json()) == spec
    task = make_task(spec, seed=0)
    assert task.x_train.shape[1:] == task.x_test.shape[1:] == task.input_shape
    assert len(task.x_train) == len(task.y_train) and len(task.x_test) == len(task.y_test)
    if task.vocab_size is not None:  # tokens in, next tokens out
        assert task.loss == "cross_entropy" and task.output_dim == task.vocab_size
        for x, y in ((task.x_train, task.y_train), (task.x_test, task.y_test)):
            assert x.dtype == y.dtype == torch.int64 and x.dim() == 2 and y.shape == x.shape
            assert 0 <= int(x.min()) and int(x.max()) < task.vocab_size
            scored = y != IGNORE_INDEX
            assert bool(scored.any(1).all())  # every example has a target
            assert 0 <= int(y[scored].min()) and int(y[scored].max()) < task.vocab_size
    else:
        assert task.x_train.dtype == torch.float32 and bool(torch.isfinite(task.x_train).all())
        if task.loss == "cross_entropy":
            assert task.y_train.dtype == torch.int64 and task.y_train.shape == task.x_train.shape[:1]
            assert int(task.y_train.max()) < task.output_dim
        else:
            assert task.y_train.dtype == torch.float32 and task.y_train.shape[-1] == task.output_dim
    again, other = make_task(spec, seed=0), make_task(spec, seed=1)
    assert torch.equal(task.x_train, again.x_train) and torch.equal(task.y_train, again.y_train)
    assert torch.equal(task.x_test, again.x_test)
    assert not (torch.equal(task.x_train, other.x_train) and torch.equal(task.y_train, other.y_train))
