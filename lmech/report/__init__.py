"""Rendering: the terminal scorecard, the self-contained HTML reports and a local server for them."""

from lmech.report.html import (
    formula_svg,
    list_reports,
    load_verdicts,
    make_provenance,
    rerender_report,
    save_verdicts,
    write_report,
)
from lmech.report.scorecard import print_scorecard, scorecard_table

__all__ = ["print_scorecard", "scorecard_table", "write_report", "rerender_report", "save_verdicts",
           "load_verdicts", "make_provenance", "formula_svg", "list_reports"]
