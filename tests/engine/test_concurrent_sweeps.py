"""Two sweeps started at the same time on one store, with overlapping run sets, as two CLI processes.

Sweep A trains widths 4, 5, 6 and sweep B widths 5, 6, 7 (4 seeds, 2 learning rates each: 24 runs
per sweep, 16 shared). The overlap is made of whole ensemble groups, so a shared run has the same
bytes whichever sweep writes it (a run's last float32 bits depend on its job's members; see
tests/engine/test_resume.py). Both must exit 0; the store then holds each of the 32 runs exactly
once, complete, with no leftover, byte-identical to one uninterrupted sweep of widths 4..7.
"""

import json
import os
import subprocess
import sys

import pytest

from lmech.store import Store

pytestmark = pytest.mark.slow

BASE = ("steps: 40\nmodel: {width: 4, depth: 2}\noptimizer: {batch_size: 16}\nobserve: {loss: {every: 10}}\n"
        "sweep: {model.width: %s, seed: [0, 1, 2, 3], optimizer.lr: [0.05, 0.1]}\n")
FILES = ("metrics.parquet", "params.pt", "spec.json")


def _sweep(tmp_path, name: str, widths: list[int], store_dir) -> subprocess.Popen:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(BASE % widths)
    return subprocess.Popen([sys.executable, "-m", "lmech.cli", "sweep", str(spec), "--runs", str(store_dir),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LMECH_THREADS": "1"})


def test_two_concurrent_sweeps_on_one_store_equal_one_uninterrupted_sweep(tmp_path):
    shared = tmp_path / "shared"
    first, second = _sweep(tmp_path, "a", [4, 5, 6], shared), _sweep(tmp_path, "b", [5, 6, 7], shared)
    outcomes = []
    for process in (first, second):
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out))
    reference = tmp_path / "reference"
    whole = _sweep(tmp_path, "whole", [4, 5, 6, 7], reference)
    out, err = whole.communicate(timeout=900)
    assert whole.returncode == 0, err[-2000:]
    ids = Store(reference).run_ids()
    assert len(ids) == 32
    # a sweep's "trained" counts the runs it wrote itself: a shared run the other sweep wrote first is neither
    assert all(o["trained"] + o["skipped"] <= 24 for o in outcomes), outcomes
    assert sum(o["trained"] + o["skipped"] for o in outcomes) >= 32, outcomes
    store = Store(shared)
    assert sorted(os.listdir(shared)) == ids  # each run once, no .tmp- leftover, nothing else
    for run_id in ids:
        assert store.verify(run_id, full=True) is None, run_id
        for name in FILES:
            assert (shared / run_id / name).read_bytes() == (reference / run_id / name).read_bytes(), \
                f"{run_id}/{name} differs from the uninterrupted sweep"
