"""Self-verifying records: every corruption of every file makes a run incomplete; NaN-free JSON; full disks."""

import errno
import hashlib
import json
import math

import pytest

import lmech.store.store as store_module
from lmech.errors import InputError
from lmech.store.doctor import doctor
from lmech.store.store import HASH_LIMIT, Store
from tests.store.conftest import ROWS, write_run

FILES = ["spec.json", "metrics.parquet", "params.pt", "summary.json"]


def _delete(path):
    path.unlink()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    path.write_bytes(b"")


def _garble(path):  # same size, one byte flipped in the middle
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def _wrong_shape(path):
    path.write_bytes(b"[]")


def _append(path):
    path.write_bytes(path.read_bytes() + b"\x00junk")


CORRUPTIONS = [_delete, _truncate, _empty, _garble, _wrong_shape, _append]


def _one_line_input_error(call, match):
    with pytest.raises(InputError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_manifest_lists_every_other_file(tmp_path):
    store = Store(tmp_path)
    directory = write_run(store)
    summary = json.loads((directory / "summary.json").read_text())
    assert set(summary["files"]) == {"spec.json", "metrics.parquet", "params.pt"}
    for name, entry in summary["files"].items():
        data = (directory / name).read_bytes()
        assert entry == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    claimed = summary.pop("summary_sha256")
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert claimed == hashlib.sha256(canonical).hexdigest()
    assert store.summary("abc")["status"] == "completed" and store.summary("abc")["non_finite"] == {}
    assert store.verify("abc") is None and store.verify("abc", full=True) is None
    assert store.verify("absent") == "not in the store"


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("name", FILES)
def test_every_corruption_of_every_file_makes_the_run_incomplete(tmp_path, name, corrupt):
    store = Store(tmp_path)
    write_run(store, "good")
    write_run(store, "bad", seed=1)
    corrupt(store.path("bad") / name)
    assert not store.has("bad") and store.has("good")
    reason = store.verify("bad")
    assert reason and "\n" not in reason
    assert store.run_ids() == ["good"]
    for read in (store.spec, store.summary, store.metrics, store.params):
        _one_line_input_error(lambda: read("bad"), "run 'bad' is (incomplete|corrupt)")
    assert store.query("SELECT count(*), count(DISTINCT run_id) FROM metrics") == [(len(ROWS), 1)]
    report = doctor(tmp_path)
    assert [(f.name, f.kind) for f in report.findings] == [("bad", "incomplete" if corrupt is _delete else "corrupt")]
    assert report.complete == ("good",) and not report.ok
    repaired = doctor(tmp_path, repair=True)
    assert repaired.findings[0].removed and not store.path("bad").exists() and store.has("good")
    write_run(store, "bad", seed=1)  # resume retrains it
    assert store.run_ids() == ["bad", "good"] and doctor(tmp_path).findings == ()


def test_edited_value_in_valid_json_summary_is_detected(tmp_path):
    store = Store(tmp_path)
    directory = write_run(store)
    summary = json.loads((directory / "summary.json").read_text())
    summary["final"]["loss"] = 0.25  # still valid JSON, same keys
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    assert not store.has("abc") and "summary_sha256" in store.verify("abc")


def test_summary_without_manifest_is_incomplete_and_replaced(tmp_path):
    """Records of the earlier layout (no manifest) are not complete: resume rewrites them."""
    store = Store(tmp_path)
    directory = write_run(store)
    (directory / "summary.json").write_text(json.dumps({"status": "completed", "final": {"loss": 0.5}}))
    assert "no manifest" in store.verify("abc")
    write_run(store, seed=7)
    assert store.spec("abc")["seed"] == 7


def test_a_consistent_but_forged_spec_still_reads_as_an_input_error(tmp_path):
    store = Store(tmp_path)
    directory = write_run(store)
    (directory / "spec.json").write_bytes(b"[]")
    summary = json.loads((directory / "summary.json").read_text())
    summary.pop("summary_sha256")
    summary["files"]["spec.json"] = {"bytes": 2, "sha256": hashlib.sha256(b"[]").hexdigest()}
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    summary["summary_sha256"] = hashlib.sha256(canonical).hexdigest()
    (directory / "summary.json").write_text(json.dumps(summary))
    assert store.has("abc")  # the manifest is consistent: has() trusts it
    _one_line_input_error(lambda: store.spec("abc"), "not a JSON object")


@pytest.mark.parametrize("entry", [{"bytes": -1}, {"bytes": True}, {"bytes": 1, "sha256": "XYZ"}, "x", None])
def test_malformed_manifest_entries_are_corrupt(tmp_path, entry):
    store = Store(tmp_path)
    directory = write_run(store)
    summary = json.loads((directory / "summary.json").read_text())
    summary.pop("summary_sha256")
    summary["files"]["spec.json"] = entry if not isinstance(entry, dict) else {"sha256": "0" * 64, **entry}
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    summary["summary_sha256"] = hashlib.sha256(canonical).hexdigest()
    (directory / "summary.json").write_text(json.dumps(summary))
    assert "malformed" in store.verify("abc")


def test_manifest_names_cannot_point_outside_the_run(tmp_path, outside):
    store = Store(tmp_path / "store")
    directory = write_run(store)
    summary = json.loads((directory / "summary.json").read_text())
    summary.pop("summary_sha256")
    data = (outside / "precious.txt").read_bytes()
    summary["files"]["../../outside/precious.txt"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    canonical = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    summary["summary_sha256"] = hashlib.sha256(canonical).hexdigest()
    (directory / "summary.json").write_text(json.dumps(summary))
    assert "malformed" in store.verify("abc")


def test_large_files_are_checked_by_size_in_has_and_by_hash_when_read(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "HASH_LIMIT", 64)  # params.pt and metrics.parquet are now "large"
    store = Store(tmp_path)
    directory = write_run(store)
    _garble(directory / "params.pt")
    assert store.has("abc")  # same size: has() does not hash large files
    assert "sha256" in store.verify("abc", full=True)
    _one_line_input_error(lambda: store.params("abc"), "corrupt.*sha256")
    assert doctor(tmp_path).findings[0].kind == "corrupt"
    assert HASH_LIMIT >= 1 << 20


def test_json_never_holds_nan_or_infinity(tmp_path):
    store = Store(tmp_path)
    spec = {"seed": 0, "init": {"scale": math.inf}}
    summary = {"status": "diverged", "final": {"loss": math.nan, "grad": -math.inf, "acc": 0.5, "none": None},
               "curve": [1.0, math.nan], "k": {1: math.nan}}
    store.write("abc", spec, [(0, "loss", math.nan)], summary)
    for name in ("spec.json", "summary.json"):
        json.loads((store.path("abc") / name).read_text(), parse_constant=lambda c: pytest.fail(f"{name}: {c}"))
    read = store.summary("abc")
    assert read["final"] == {"loss": None, "grad": None, "acc": 0.5, "none": None} and read["curve"] == [1.0, None]
    assert read["non_finite"] == {  # in the order written; paths are keys and list indices
        "spec.json": [{"path": ["init", "scale"], "value": "inf"}],
        "summary.json": [{"path": ["final", "loss"], "value": "nan"}, {"path": ["final", "grad"], "value": "-inf"},
                         {"path": ["curve", 1], "value": "nan"}, {"path": ["k", "1"], "value": "nan"}]}
    assert store.spec("abc")["init"] == {"scale": None}
    assert math.isnan(store.series("abc", "loss")[1][0])  # parquet keeps NaN as NaN


def test_reserved_summary_keys_are_refused(tmp_path):
    with pytest.raises(InputError, match="reserved"):
        Store(tmp_path).write("abc", {}, [], {"files": []})


def _failing_writes(monkeypatch, fail_at: int, error: OSError):
    real, calls = store_module._write_bytes, []

    def write_bytes(path, data):
        calls.append(path.name)
        if len(calls) == fail_at:
            real(path, data[: len(data) // 2])  # a partial file, as a full disk leaves it
            raise error
        real(path, data)

    monkeypatch.setattr(store_module, "_write_bytes", write_bytes)
    return calls


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   OSError(errno.EDQUOT, "Disk quota exceeded"),
                                   OSError("IOError: No space left on device")], ids=["ENOSPC", "EDQUOT", "arrow"])
def test_full_disk_raises_one_line_and_leaves_nothing(tmp_path, monkeypatch, fail_at, error):
    store = Store(tmp_path)
    write_run(store, "kept")
    before = sorted(p.name for p in tmp_path.iterdir())
    calls = _failing_writes(monkeypatch, fail_at, error)
    message = _one_line_input_error(lambda: write_run(store, "abc"), r"^disk full: run abc was not written \(")
    assert len(calls) == fail_at and "summary.json" not in calls[:-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == before, message  # no tmp, no half run
    assert store.run_ids() == ["kept"] and store.verify("kept", full=True) is None
    monkeypatch.undo()
    write_run(store, "abc")  # once space is back the write succeeds
    assert store.run_ids() == ["abc", "kept"]


def test_other_os_errors_keep_their_traceback(tmp_path, monkeypatch):
    _failing_writes(monkeypatch, 1, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError) as caught:
        write_run(Store(tmp_path))
    assert not isinstance(caught.value, InputError) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", FILES)
def test_writing_over_a_corrupt_run_replaces_it(tmp_path, name):
    store = Store(tmp_path)
    write_run(store, seed=0)
    _garble(store.path("abc") / name)
    write_run(store, seed=1)
    assert store.verify("abc", full=True) is None and store.spec("abc")["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc"]


def test_resume_retrains_exactly_the_corrupt_run(tmp_path):
    from lmech.engine import execute
    from lmech.spec import SweepSpec, expand_sweep

    runs = expand_sweep(SweepSpec(model={"width": 4, "depth": 1}, steps=3, observe={"loss": {"every": 3}},
                                  sweep={"seed": [0, 1, 2]}))
    store = Store(tmp_path)
    assert execute(runs, store).trained == 3
    victim = runs[1].id
    _truncate(store.path(victim) / "metrics.parquet")
    again = execute(runs, store)
    assert (again.trained, again.skipped) == (1, 2) and store.verify(victim, full=True) is None
