"""The terminal scorecard: one row per phenomenon (prediction, measurement, error, verdict)."""

from rich.console import Console
from rich.table import Table

from lmech.phenomena.verdict import Verdict

__all__ = ["scorecard_table", "print_scorecard"]


def _number(value: float) -> str:
    return "n/a" if value != value else f"{value:.3g}"  # NaN-safe


def scorecard_table(verdicts: list[Verdict]) -> Table:
    table = Table(title="lmech atlas", show_lines=False)
    for column in ("phenomenon", "prediction", "measurement", "error", "tolerance", "verdict", "s"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        c = v.comparison
        table.add_row(v.name, c.prediction, c.measurement, f"{_number(c.error)} ({c.metric})",
                      _number(c.tolerance), "[green]PASS[/]" if c.passed else "[red]FAIL[/]",
                      f"{v.seconds:.1f}")
    return table


def print_scorecard(verdicts: list[Verdict], console: Console | None = None) -> None:
    console = console or Console()
    console.print(scorecard_table(verdicts))
    passed = sum(v.passed for v in verdicts)
    console.print(f"{passed}/{len(verdicts)} phenomena agree with theory; "
                  f"total {sum(v.seconds for v in verdicts):.1f} s")
