import json

import pytest

from lmech.errors import InputError
from lmech.store import Store


def _write(store, run_id="abc"):
    return store.write(run_id, {"seed": 0}, [(0, "loss", 1.0), (10, "loss", 0.5)],
                       {"status": "completed", "final": {"loss": 0.5}})


def test_roundtrip_and_query(tmp_path):
    store = Store(tmp_path)
    _write(store)
    assert store.has("abc") and store.run_ids() == ["abc"]
    assert store.series("abc", "loss") == ([0, 10], [1.0, 0.5])
    assert store.query("select count(*), min(value) from metrics") == [(2, 0.5)]


def test_queries_read_each_run_once_and_answer_like_query(tmp_path, monkeypatch):
    import lmech.store.store as store_module

    store = Store(tmp_path)
    _write(store, "abc")
    _write(store, "def")
    statements = ["select count(*) from runs", "select run_id, sum(value) from metrics group by run_id order by 1"]
    expected = [store.query(sql) for sql in statements]
    reads = []
    real_inspect = store_module._inspect
    monkeypatch.setattr(store_module, "_inspect", lambda *a, **k: reads.append(a[0].name) or real_inspect(*a, **k))
    assert store.queries(statements) == expected == [[(2,)], [("abc", 1.5), ("def", 1.5)]]
    assert sorted(reads) == ["abc", "def"]


def test_incomplete_or_temporary_directories_do_not_look_complete(tmp_path):
    store = Store(tmp_path)
    (tmp_path / ".tmp-abc-1234").mkdir()  # a write killed before the rename
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "spec.json").write_text("{}")  # no summary, no metrics
    assert store.run_ids() == [] and not store.has("half")
    _write(store, "half")  # rerunning replaces the leftover
    assert store.has("half")


def test_corrupt_records_raise_input_errors(tmp_path):
    store = Store(tmp_path)
    _write(store)
    (tmp_path / "abc" / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        store.summary("abc")
    (tmp_path / "abc" / "metrics.parquet").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt"):
        store.metrics("abc")
    with pytest.raises(InputError, match="no run"):
        store.spec("missing")


def test_existing_complete_record_is_kept(tmp_path):
    store = Store(tmp_path)
    _write(store)
    store.write("abc", {"seed": 1}, [], {"status": "completed", "final": {}})
    assert json.loads((tmp_path / "abc" / "spec.json").read_text()) == {"seed": 0}
