"""python_source: every window is the bytes of its file at its offset; train and test come from
disjoint files and a file's side depends only on its name; seeding."""

import sysconfig
from pathlib import Path

import pytest
import torch

from lmech.tasks import make_task
from lmech.tasks.python_source import PythonSourceSpec, python_source_files

SPEC = PythonSourceSpec(seq_len=32, n_train=200, n_test=50, max_bytes=400_000, test_fraction=0.3)


def _check_windows(x, y, files, which, start):
    contents = [p.read_bytes() for p in files]
    for row_x, row_y, f, s in zip(x.tolist(), y.tolist(), which.tolist(), start.tolist()):
        window = contents[f][s:s + len(row_x) + 1]
        assert bytes(row_x) == window[:-1] and bytes(row_y) == window[1:]


def test_windows_are_file_bytes():
    task = make_task(SPEC, seed=0)
    assert task.x_train.shape == task.y_train.shape == (200, 32) and task.x_test.shape == (50, 32)
    assert task.x_train.dtype == task.y_train.dtype == torch.int64
    assert task.vocab_size == task.output_dim == 256 and task.loss == "cross_entropy"
    assert torch.equal(task.y_train[:, :-1], task.x_train[:, 1:])  # next-byte targets
    train, test = python_source_files(SPEC)
    _check_windows(task.x_train, task.y_train, train, task.extras["train_file"], task.extras["train_start"])
    _check_windows(task.x_test, task.y_test, test, task.extras["test_file"], task.extras["test_start"])
    assert len(set(task.extras["train_file"].tolist())) > 1  # windows come from several files
    # negative control: the windows are not those one byte further on
    with pytest.raises(AssertionError):
        _check_windows(task.x_train, task.y_train, train, task.extras["train_file"], task.extras["train_start"] + 1)


def test_split_is_by_file_name():
    train, test = python_source_files(SPEC)
    assert not {p.name for p in train} & {p.name for p in test}
    listing = sorted(p for p in Path(sysconfig.get_paths()["stdlib"]).glob("*.py") if not p.name.startswith("test"))
    chosen = sorted(train + test)
    assert chosen == listing[:len(chosen)]  # a prefix of the sorted top-level listing (no test/ package)
    size = sum(p.stat().st_size for p in chosen)
    assert size <= SPEC.max_bytes < size + listing[len(chosen)].stat().st_size  # the longest such prefix
    # a larger cap adds files but moves none across the split
    big_train, big_test = python_source_files(SPEC.model_copy(update={"max_bytes": 800_000}))
    assert set(train) <= set(big_train) and set(test) <= set(big_test) and len(big_train) > len(train)


def test_default_spec_and_seeding():
    a, b, c = make_task(PythonSourceSpec(), 0), make_task(PythonSourceSpec(), 0), make_task(PythonSourceSpec(), 1)
    assert a.x_train.shape == (2048, 128)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    text = bytes(a.x_train[:50].reshape(-1).tolist()).decode("utf-8", errors="replace")
    assert "def " in text  # it is Python source


def test_empty_split_is_refused():
    with pytest.raises(ValueError, match="max_bytes"):
        python_source_files(PythonSourceSpec(max_bytes=10))
