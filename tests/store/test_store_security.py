"""Hostile run ids and directory names: rejected before any path is built; nothing outside the store is touched."""

import os
import shutil

import duckdb
import pytest

from lmech.errors import InputError
from lmech.store.store import Store, check_run_id
from tests.store.conftest import ROWS, snapshot, write_run

SQL_NAME = "a\"']); COPY (SELECT 42) TO $$x.csv$$; --"
HOSTILE = [".", "..", "../x", "../../etc", "/abs", "/", "a/b", "a\\b", "\x00", "a\x00b", "\n", "abc\n", "\t",
           "", " ", "x" * 129, "-a", "_a", ".hidden", ".tmp-1-abc", "..a", "[/oops]", "[bold]x[/bold]", "é",
           "a b", SQL_NAME]
VALID = ["abc", "0123456789abcdef", "mine-20240101-120000-abcdef", "A.b_c-d", "x" * 128, "a..b", "a."]


def _calls(store, run_id):
    return {
        "path": lambda: store.path(run_id),
        "has": lambda: store.has(run_id),
        "verify": lambda: store.verify(run_id),
        "spec": lambda: store.spec(run_id),
        "summary": lambda: store.summary(run_id),
        "metrics": lambda: store.metrics(run_id),
        "series": lambda: store.series(run_id, "loss"),
        "params": lambda: store.params(run_id),
        "write": lambda: store.write(run_id, {"seed": 0}, ROWS, {"status": "completed"}),
    }


@pytest.mark.parametrize("run_id", HOSTILE, ids=repr)
def test_hostile_run_ids_are_refused_by_every_method(tmp_path, outside, run_id):
    store = Store(tmp_path / "store")
    write_run(store, "victim")
    before = snapshot(tmp_path)
    for method, call in _calls(store, run_id).items():
        with pytest.raises(InputError, match="invalid run id") as caught:
            call()
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 200, method
    assert snapshot(tmp_path) == before  # nothing created, read-modified or deleted, in or outside the store
    assert store.has("victim") and store.run_ids() == ["victim"]


@pytest.mark.parametrize("run_id", [5, None, b"abc", ["abc"]], ids=repr)
def test_ids_that_are_not_strings_are_refused(run_id):
    with pytest.raises(InputError, match="invalid run id"):
        check_run_id(run_id)


def test_invalid_id_is_refused_before_the_store_is_created(tmp_path):
    store = Store(tmp_path / "not-yet")
    with pytest.raises(InputError):
        store.write("..", {}, [], {})
    assert not (tmp_path / "not-yet").exists()


@pytest.mark.parametrize("run_id", VALID)
def test_valid_ids_round_trip(tmp_path, run_id):
    assert check_run_id(run_id) == run_id
    store = Store(tmp_path)
    write_run(store, run_id)
    assert store.run_ids() == [run_id] and store.series(run_id, "loss") == ([0, 10], [1.0, 0.5])


def test_directory_names_spliced_into_sql_are_never_executed(tmp_path, monkeypatch):
    """A complete-looking run under a hostile name is skipped: neither listed nor queried, and its SQL never runs."""
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    write_run(store, "good")
    shutil.copytree(store.path("good"), store.root / SQL_NAME)  # a byte-for-byte complete record
    assert store.run_ids() == ["good"]
    assert store.query("SELECT count(*), count(DISTINCT run_id) FROM metrics") == [(len(ROWS), 1)]
    leaked = [p for p in tmp_path.rglob("*.csv")]
    assert leaked == [], leaked


def test_user_sql_cannot_touch_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store(tmp_path / "store")
    write_run(store)
    for sql in ["COPY (SELECT 42) TO 'x.csv'", "SELECT * FROM read_csv('/etc/passwd')",
                f"SELECT * FROM read_parquet('{store.path('abc')}/metrics.parquet')"]:
        with pytest.raises(duckdb.Error):
            store.query(sql)
    assert not (tmp_path / "x.csv").exists()
    assert store.query("SELECT run_id, count(*) FROM metrics GROUP BY run_id") == [("abc", len(ROWS))]


def test_symlinked_run_directory_is_not_a_run_and_its_target_is_never_read(tmp_path, outside):
    store = Store(tmp_path / "store")
    elsewhere = Store(outside)
    write_run(elsewhere, "target")  # a complete record outside the store
    store.root.mkdir()
    os.symlink(outside / "target", store.root / "linked")
    assert not store.has("linked") and store.run_ids() == []
    assert "symbolic link" in store.verify("linked")
    with pytest.raises(InputError, match="corrupt"):
        store.summary("linked")
    assert store.query("SELECT count(*) FROM metrics") == [(0,)]
    before = snapshot(outside)
    with pytest.raises(InputError, match="symbolic link"):
        write_run(store, "linked")  # never replaced: not something lmech wrote
    assert snapshot(outside) == before and (store.root / "linked").is_symlink()


def test_symlinked_file_inside_a_run_makes_it_incomplete(tmp_path, outside):
    store = Store(tmp_path / "store")
    write_run(store)
    copy = outside / "metrics.parquet"
    shutil.copy(store.path("abc") / "metrics.parquet", copy)  # identical bytes, but outside the store
    (store.path("abc") / "metrics.parquet").unlink()
    os.symlink(copy, store.path("abc") / "metrics.parquet")
    assert not store.has("abc") and "not a regular file" in store.verify("abc")
    with pytest.raises(InputError, match="corrupt"):
        store.metrics("abc")


def test_write_never_replaces_a_directory_lmech_did_not_write(tmp_path):
    """A nested store (the atlas writes runs/atlas-*/<run>) or a user's folder under a run's name is kept."""
    store = Store(tmp_path)
    write_run(Store(tmp_path / "atlas-fast"), "inner")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1,2\n")
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="nested store"):
        write_run(store, "atlas-fast")
    with pytest.raises(InputError, match="x.csv"):
        write_run(store, "data")
    assert snapshot(tmp_path) == before
