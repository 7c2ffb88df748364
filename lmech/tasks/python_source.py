"""Bytes of the Python standard library's own source: a real text corpus present on every machine.

One job: a deterministic selection of the stdlib's top-level modules, split
into train and test by file, cut into byte windows for next-byte prediction.
It ignores tokenizers (the vocabulary is the 256 byte values) and the rest of
the file tree (packages, tests, C sources).
"""

import hashlib
import sysconfig
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lmech.seeding import generator
from lmech.tasks.task import Task

__all__ = ["PythonSourceSpec", "make_python_source", "python_source_files"]


class PythonSourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    name: Literal["python_source"] = "python_source"
    seq_len: int = Field(128, ge=1, le=65_536, description="T bytes per input window")
    n_train: int = Field(2048, ge=1, le=10_000_000, description="training windows")
    n_test: int = Field(256, ge=1, le=10_000_000, description="test windows")
    max_bytes: int = Field(1_000_000, ge=1, le=1_000_000_000, description="cap on the total size of the selected files")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="expected share of files held out")


def _held_out(file_name: str, test_fraction: float) -> bool:
    """A file's side depends only on its name: blake2b(name) read as a number in [0, 1)."""
    digest = hashlib.blake2b(file_name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < test_fraction


def python_source_files(spec: PythonSourceSpec) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The (train, test) files: the longest prefix of the name-sorted top-level stdlib *.py
    files whose total size is at most max_bytes, split by a hash of each file name.

    Top-level files only, so the stdlib's test/ package and every other package are left
    out; files whose name starts with "test" are left out too.

    Raises:
        ValueError: a split came out empty (raise max_bytes or change test_fraction).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    chosen, total = [], 0
    for path in sorted(p for p in root.glob("*.py") if p.is_file() and not p.name.startswith("test")):
        total += path.stat().st_size
        if total > spec.max_bytes:
            break
        chosen.append(path)
    test = tuple(p for p in chosen if _held_out(p.name, spec.test_fraction))
    train = tuple(p for p in chosen if not _held_out(p.name, spec.test_fraction))
    if not train or not test:
        raise ValueError(f"python_source: {len(train)} train and {len(test)} test files under max_bytes = "
                         f"{spec.max_bytes} in {root}; raise max_bytes or change test_fraction")
    return train, test


def make_python_source(spec: PythonSourceSpec, seed: int) -> Task:
    """Random byte windows of the selected stdlib files, train and test from disjoint files.

    A window is T + 1 consecutive bytes of one file (windows never span two files; a
    file shorter than T + 1 bytes gives none), its start uniform over all such windows
    of the split (so files are weighted by length); x is its first T bytes and y its
    last T (the next bytes). Nothing is masked.
    Shapes: x (N, T) int64 in [0, 256); y (N, T) int64; loss "cross_entropy";
    output_dim = vocab_size = 256.
    extras: "train_file", "test_file" (N,) int64: the window's file, an index into
    `python_source_files(spec)`'s train or test tuple; "train_start", "test_start" (N,)
    int64: the window's byte offset in that file.
    Algorithm: read the files (about max_bytes), draw the starts from child seeds of `seed`.
    Source: the byte-level language modelling of e.g. Al-Rfou et al. 2019, "Character-level
    language modeling with deeper self-attention"; the corpus is CPython's Lib/.
    Failure modes: the bytes, and so the data and the split, depend on the Python version
    (and its patch release) that runs this; record it beside any result.
    """
    train_files, test_files = python_source_files(spec)
    t = spec.seq_len

    def draw(files: tuple[Path, ...], n: int, purpose: str):
        contents = [torch.from_numpy(np.frombuffer(p.read_bytes(), dtype=np.uint8).copy()) for p in files]
        counts = torch.tensor([max(len(c) - t, 0) for c in contents])  # windows of T + 1 bytes per file
        if int(counts.sum()) == 0:
            raise ValueError(f"python_source: no file of the split has {t + 1} bytes")
        ends = counts.cumsum(0)
        pick = torch.randint(int(ends[-1]), (n,), generator=generator(seed, purpose))
        file = torch.searchsorted(ends, pick, right=True)
        start = pick - (ends[file] - counts[file])
        flat = torch.cat(contents).long()
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.tensor([len(c) for c in contents]).cumsum(0)])
        index = (offsets[file] + start).unsqueeze(1) + torch.arange(t + 1)
        window = flat[index]
        return window[:, :t], window[:, 1:], file, start

    x_train, y_train, f_train, s_train = draw(train_files, spec.n_train, "python_source-train")
    x_test, y_test, f_test, s_test = draw(test_files, spec.n_test, "python_source-test")
    extras = {"train_file": f_train, "test_file": f_test, "train_start": s_train, "test_start": s_test}
    return Task(x_train, y_train, x_test, y_test, "cross_entropy", 256, extras, vocab_size=256)
