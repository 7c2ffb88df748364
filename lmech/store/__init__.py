"""Run records on disk (atomic directories) and DuckDB queries over them.

The Recorder (a user's training loop -> one run) is `lmech.engine.recorder.Recorder`.
"""

from lmech.store.store import METRIC_COLUMNS, Store

__all__ = ["Store", "METRIC_COLUMNS"]

