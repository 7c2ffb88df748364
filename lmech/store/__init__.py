"""Run records on disk (atomic directories) and DuckDB queries over them.

`Recorder` (a user's training loop -> one run) is imported on first use: it
loads the instruments, which `Store` alone does not need.
"""

from lmech.store.store import METRIC_COLUMNS, Store

__all__ = ["Store", "METRIC_COLUMNS", "Recorder"]


def __getattr__(name: str):
    if name == "Recorder":
        from lmech.store.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'lmech.store' has no attribute {name!r}")
