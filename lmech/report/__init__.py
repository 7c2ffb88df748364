"""Rendering: the terminal scorecard and the self-contained HTML report."""

from lmech.report.html import load_verdicts, save_verdicts, write_report
from lmech.report.scorecard import print_scorecard, scorecard_table

__all__ = ["print_scorecard", "scorecard_table", "write_report", "save_verdicts", "load_verdicts"]
