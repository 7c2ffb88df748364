"""The terminal scorecard: one row per phenomenon (prediction, measurement, error, rule, verdict).

Columns share the width by ratio and wrap at spaces, so the table reads at 80 columns without
words broken in the middle (only a single word longer than its column is folded).
"""

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lmech.phenomena.verdict import Verdict

__all__ = ["scorecard_table", "print_scorecard"]


def _number(value: float) -> str:
    return "n/a" if value != value else f"{value:.3g}"  # NaN-safe


# (column, ratio of the free width): the wordy columns get the room
_COLUMNS = (("phenomenon", 0), ("prediction", 3), ("measurement", 3), ("error", 0), ("passes when", 3),
            ("verdict", 0), ("s", 0))
WIDE = 140  # below this many columns each phenomenon is a block of labelled lines instead of one row


def _verdict(v: Verdict) -> str:
    return "[green]PASS[/]" if v.passed else "[red]FAIL[/]"


def scorecard_table(verdicts: list[Verdict], width: int | None = None) -> Table:
    """The scorecard; width (the console's) picks one row per phenomenon (>= WIDE) or labelled blocks.

    Text wraps at spaces; only a single word longer than its column is folded.
    """
    if width is not None and width < WIDE:
        return _blocks(verdicts)
    table = Table(title="lmech atlas", expand=width is not None)
    for column, ratio in _COLUMNS:
        if ratio:
            table.add_column(column, ratio=ratio, min_width=12, overflow="fold")
        else:
            table.add_column(column, no_wrap=column != "phenomenon", overflow="fold")
    for v in verdicts:
        c = v.comparison  # every string is user text (a phenomenon of one's own): never rich markup
        table.add_row(escape(v.name), escape(c.prediction), escape(c.measurement), _number(c.error),
                      escape(c.passes_when), _verdict(v), f"{v.seconds:.1f}")
    return table


def _blocks(verdicts: list[Verdict]) -> Table:
    table = Table(title="lmech atlas", show_header=False, expand=True, show_lines=False)
    table.add_column("field", max_width=30, overflow="fold", style="bold")
    table.add_column("value", ratio=1, overflow="fold")
    for v in verdicts:
        c = v.comparison
        table.add_row(escape(v.name), f"{_verdict(v)}  error {_number(c.error)}  {v.seconds:.1f} s")
        table.add_row("  prediction", escape(c.prediction))
        table.add_row("  measurement", escape(c.measurement))
        table.add_row("  passes when", escape(c.passes_when), end_section=True)
    return table


def print_scorecard(verdicts: list[Verdict], console: Console | None = None) -> None:
    console = console or Console()
    console.print(scorecard_table(verdicts, console.width))
    passed = sum(v.passed for v in verdicts)
    console.print(f"{passed}/{len(verdicts)} phenomena agree with theory; "
                  f"total {sum(v.seconds for v in verdicts):.1f} s")
