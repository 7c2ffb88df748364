"""Measurements by name: the one registry (instruments and trainer observables), `measure`, and the
adapter that schedules any entry inside training.

Pure instruments live in `lmech.instruments` (functions of model, loss, batch);
trainer observables here (functions of the trainer's state). Both are rows of
`REGISTRY` (registry.py), which every entry point reads.
"""

from lmech.observables.measure import Measurement, check_request, measure
from lmech.observables.observer import make_observer, plan_observations
from lmech.observables.registry import ENTRY_POINTS, REGISTRY, Entry, get_entry, result_rows, validate_options

__all__ = ["REGISTRY", "Entry", "ENTRY_POINTS", "get_entry", "validate_options", "result_rows",
           "measure", "Measurement", "check_request", "make_observer", "plan_observations"]
