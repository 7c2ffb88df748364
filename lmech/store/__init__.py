"""Run records on disk (atomic directories) and DuckDB queries over them."""

from lmech.store.store import METRIC_COLUMNS, Store

__all__ = ["Store", "METRIC_COLUMNS"]
