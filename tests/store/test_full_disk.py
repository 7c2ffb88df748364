"""A disk that fills up during a sweep: one line on stderr saying the disk is full and which run was
not written, exit code 2, and a store that stays valid (every visible run complete, no leftover),
which a rerun with space back completes.

Two ways: a simulated ENOSPC (the store's file write patched, in the sweep's own process, to write
half a file and raise on its N-th call) and, where this process may mount one (root), a real tmpfs
of 256 KiB (a run of this sweep takes about 24 KiB on it). The store-level cases (every file,
ENOSPC/EDQUOT/Arrow's message) are in test_store_integrity.py.
"""

import json
import os
import re
import subprocess
import sys
import uuid

import pytest

from lmech.store import Store

pytestmark = pytest.mark.slow

SWEEP = ("steps: 10\nmodel: {width: 8, depth: 1}\nobserve: {loss: {every: 5}}\n"
         "sweep: {seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], "
         "model.depth: [1, 2]}\n")
RUNS = 48

# The sweep, with lmech.store.store._write_bytes failing (half a file, then ENOSPC) on call argv[1];
# the run it was writing goes to the file argv[2].
_PATCHED = """
import errno, sys
import lmech.store.store as store
real, calls, fail_at, record = store._write_bytes, [], int(sys.argv[1]), sys.argv[2]
def write_bytes(path, data):
    calls.append(path)
    if len(calls) == fail_at:
        real(path, data[: len(data) // 2])
        open(record, "w").write(path.parent.name)
        raise OSError(errno.ENOSPC, "No space left on device")
    real(path, data)
store._write_bytes = write_bytes
sys.argv = ["lmech", *sys.argv[3:]]
from lmech.cli.commands import main
main()
"""


def _sweep(spec, store_dir, prefix=()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, "sweep", str(spec), "--runs", str(store_dir), "--json"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "LMECH_THREADS": "1"})


def _assert_valid(store_dir) -> list[str]:
    store = Store(store_dir)
    names = sorted(os.listdir(store_dir))
    assert not [n for n in names if n.startswith(".")], names  # no .tmp- leftover
    for name in names:
        assert store.verify(name, full=True) is None, name
    return names


def _assert_one_line_disk_full(result, run_id: str | None = None) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    match = re.search(r"disk full: run ([0-9a-f]+) was not written", lines[0])
    assert match, lines[0]
    if run_id is not None:
        assert match.group(1) == run_id
    return match.group(1)


@pytest.mark.parametrize("fail_at", [1, 22, 43])  # the first run's metrics; later runs' params / summary
def test_simulated_enospc_during_a_sweep_is_one_line_and_the_store_stays_valid(tmp_path, fail_at):
    spec, store_dir, record = tmp_path / "sweep.yaml", tmp_path / "runs", tmp_path / "failed.txt"
    spec.write_text(SWEEP)
    result = _sweep(spec, store_dir, (sys.executable, "-c", _PATCHED, str(fail_at), str(record)))
    tmp_name = record.read_text()
    failed = _assert_one_line_disk_full(result)
    assert tmp_name.endswith(f"-{failed}")  # the message names the run that was being written
    written = _assert_valid(store_dir)
    assert failed not in written and len(written) == (fail_at - 1) // 4  # 4 files a run, summary.json last
    again = _sweep(spec, store_dir, (sys.executable, "-m", "lmech.cli"))
    assert again.returncode == 0, again.stderr[-2000:]
    outcome = json.loads(again.stdout)
    assert (outcome["skipped"], outcome["trained"]) == (len(written), RUNS - len(written))
    assert len(_assert_valid(store_dir)) == RUNS


@pytest.fixture
def small_tmpfs(tmp_path):
    mountpoint = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot run mount: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()[:200]}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=60)


def test_a_real_full_tmpfs_during_a_sweep_is_one_line_and_the_store_stays_valid(tmp_path, small_tmpfs):
    spec, store_dir = tmp_path / "sweep.yaml", small_tmpfs / "runs"
    spec.write_text(SWEEP)
    result = _sweep(spec, store_dir, (sys.executable, "-m", "lmech.cli"))
    failed = _assert_one_line_disk_full(result)
    written = _assert_valid(store_dir)
    assert 1 <= len(written) < RUNS and failed not in written
    again = _sweep(spec, store_dir, (sys.executable, "-m", "lmech.cli"))  # still full: same answer, still valid
    _assert_one_line_disk_full(again)
    assert len(_assert_valid(store_dir)) >= len(written)
