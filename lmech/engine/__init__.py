"""Sweeps: expand specs, group runs into ensembles, execute them, resume for free."""

from lmech.engine.execute import ExecutionReport, execute, run_job
from lmech.engine.plan import plan_jobs

__all__ = ["execute", "ExecutionReport", "plan_jobs", "run_job"]
