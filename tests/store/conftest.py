"""Shared helpers of the store tests: a small complete run, and a snapshot of a directory tree."""

import hashlib
import os
from pathlib import Path

import pytest
import torch

ROWS = [(0, "loss", 1.0), (10, "loss", 0.5), (10, "accuracy", 0.75)]


def write_run(store, run_id="abc", seed=0, params=True):
    """Write one small run (3 metric rows, optional params.pt); return its directory."""
    return store.write(run_id, {"seed": seed, "lr": 0.1}, ROWS,
                       {"status": "completed", "final": {"loss": 0.5}},
                       {"w": torch.arange(6.0).reshape(2, 3)} if params else None)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root, symlinks not followed: relative path -> (kind, size, sha256 or target, mtime_ns)."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", 0, os.readlink(path), info.st_mtime_ns)
            elif path.is_dir():
                out[rel] = ("dir", 0, "", info.st_mtime_ns)
            else:
                out[rel] = ("file", info.st_size, hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns)
    return out


@pytest.fixture
def outside(tmp_path):
    """tmp_path/outside: files and a directory next to the store, which no store operation may touch."""
    directory = tmp_path / "outside"
    (directory / "sub").mkdir(parents=True)
    (directory / "precious.txt").write_text("keep me")
    (directory / "sub" / "x.bin").write_bytes(b"\x00\x01")
    (tmp_path / "sibling.txt").write_text("next to the store")
    return directory
