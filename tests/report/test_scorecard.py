"""The terminal scorecard: a "passes when" column, and clean wrapping at 80 columns."""

import re

from rich.console import Console

from lmech.phenomena.verdict import Comparison, Verdict
from lmech.report import print_scorecard

_VERDICTS = [
    Verdict("deep-linear-dynamics", "c", "f", "s",
            Comparison("half-times 140, 190, 340, 610 steps", "half-times 140, 200, 350, 650 steps",
                       "worst mode's normalized L2 error", 0.0397, 0.1, True, {"ordered_by_strength": True}), 1.0),
    Verdict("grokking", "c", "f", "s",
            Comparison("delay ratio >= 5; generalization step increasing in init scale, decreasing in weight decay",
                       "baseline (init 1, wd 0): memorized 200, generalized 3000 (ratio 15.0)",
                       "delay ratio at baseline (generalization / memorization step), must be >= tolerance",
                       15.0, 5.0, False, {"baseline_ok": True, "init_scale_ordering_holds": False}), 30.1),
    Verdict("[red]markup[/red]", "c", "f", "s", Comparison("[b]p[/b]", "m", "err", 0.1, 0.2, True), 0.5),
]


def _render(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_scorecard(_VERDICTS, console)
    return console.export_text()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\s│┃|]+", text))


def test_80_columns_wraps_between_words():
    out = _render(80)
    assert max(len(line) for line in out.splitlines()) <= 80
    printed = _words(out)
    for v in _VERDICTS:
        c = v.comparison
        for text in (v.name, c.prediction, c.measurement, c.passes_when):
            for word in text.split():
                assert word in printed, f"{word!r} broken or missing at 80 columns"
    assert "passes when" in out and "delay ratio at baseline (generalization / memorization step) ≥ 5".split()[-1]
    assert "[red]markup[/red]" in out and "[b]p[/b]" in out  # user text is not rich markup


def test_wide_console_is_one_row_per_phenomenon():
    out = _render(160)
    assert "passes when" in out and max(len(line) for line in out.splitlines()) <= 160
    for word in "worst mode's normalized L2 error ≤ 0.1; and true: ordered by strength".split():
        assert word in _words(out)
    assert "PASS" in out and "FAIL" in out
