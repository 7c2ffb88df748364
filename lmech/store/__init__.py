"""Run records on disk (self-verifying atomic directories) and DuckDB queries over them.

`lmech.store.doctor.doctor` examines and repairs a store (not re-exported here: the name
would shadow its module). The Recorder (a user's training loop -> one run) is
`lmech.engine.recorder.Recorder`.
"""

from lmech.store.store import HASH_LIMIT, METRIC_COLUMNS, Store, check_run_id

__all__ = ["Store", "METRIC_COLUMNS", "HASH_LIMIT", "check_run_id"]
