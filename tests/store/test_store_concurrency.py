"""Two processes writing the same run ids at the same moment end with one complete run each, never an error."""

import multiprocessing
import os
import traceback

from lmech.store.store import Store
from tests.store.conftest import ROWS

ROUNDS = 50


def _writer(root: str, writer: int, barrier, results) -> None:
    store = Store(root)
    errors = []
    for round_ in range(ROUNDS):
        try:
            barrier.wait(timeout=600 if round_ == 0 else 60)  # round 0 waits for the other's imports
            store.write(f"run{round_}", {"writer": writer, "round": round_}, ROWS,
                        {"status": "completed", "writer": writer})
        except Exception:  # noqa: BLE001 - reported to the parent, which fails the test
            errors.append(f"round {round_}: {traceback.format_exc()}")
    results.put((writer, errors))


def test_two_processes_writing_the_same_ids_end_with_one_complete_run(tmp_path):
    store = Store(tmp_path)
    for round_ in range(0, ROUNDS, 2):  # every other id starts as an incomplete leftover to replace
        (tmp_path / f"run{round_}").mkdir()
        (tmp_path / f"run{round_}" / "spec.json").write_text("{}")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_writer, args=(str(tmp_path), k, barrier, results)) for k in range(2)]
    for worker in workers:
        worker.start()
    try:
        reports = dict(results.get(timeout=900) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
    assert reports == {0: [], 1: []}, reports
    assert store.run_ids() == sorted(f"run{r}" for r in range(ROUNDS))
    for round_ in range(ROUNDS):
        spec, summary = store.spec(f"run{round_}"), store.summary(f"run{round_}")
        assert spec["round"] == round_ and spec["writer"] == summary["writer"] in (0, 1)  # one writer's record
        assert store.verify(f"run{round_}", full=True) is None
    assert sorted(os.listdir(tmp_path)) == sorted(f"run{r}" for r in range(ROUNDS))  # no .tmp- left
