"""Sweeps: expand specs, group runs into ensembles, execute them, resume for free; and the Recorder
for users' own training loops."""

from lmech.engine.execute import ExecutionReport, execute, run_job
from lmech.engine.plan import plan_jobs
from lmech.engine.recorder import Recorder

__all__ = ["execute", "ExecutionReport", "plan_jobs", "run_job", "Recorder"]
