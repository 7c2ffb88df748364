"""The Phenomenon record (spec + predict + measure + compare + figure) and its Verdict."""

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Comparison", "Verdict", "Phenomenon", "figure_png"]


@dataclass(frozen=True)
class Comparison:
    """Prediction beside measurement, with the error metric, its tolerance and the outcome.

    passed must be computed from error and tolerance (and any stated sub-checks listed in details).
    direction: "<=" when error must be at most the tolerance, ">=" when at least; None (the default)
    reads it from the metric's words ("... must be >= tolerance") and otherwise means "<=".
    """

    prediction: str
    measurement: str
    metric: str
    error: float
    tolerance: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    direction: str | None = None

    @property
    def at_least(self) -> bool:
        """True when the error must reach the tolerance from above (error >= tolerance)."""
        if self.direction is not None:
            return self.direction == ">="
        return bool(re.search(r"(>=|≥|at least)\s*(the\s+)?tolerance", self.metric))

    @property
    def passes_when(self) -> str:
        """The pass rule in words, derived from metric, tolerance, direction and the boolean sub-checks."""
        metric = re.sub(r",?\s*must be\s*(>=|<=|≥|≤)\s*tolerance", "", self.metric).strip() or "error"
        rule = f"{metric} {'≥' if self.at_least else '≤'} {self.tolerance:.3g}"
        checks = [str(key).replace("_", " ") for key, value in self.details.items() if isinstance(value, bool)]
        return rule + ("; and true: " + ", ".join(checks) if checks else "")


@dataclass(frozen=True)
class Verdict:
    """A phenomenon's outcome as the report shows it."""

    name: str
    claim: str
    formula: str
    source: str
    comparison: Comparison
    seconds: float
    figure_png: bytes | None = None

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        return {
            "name": self.name, "claim": self.claim, "formula": self.formula, "source": self.source,
            "prediction": c.prediction, "measurement": c.measurement, "metric": c.metric,
            "error": clean(c.error), "tolerance": c.tolerance, "passed": c.passed,
            "direction": "<=" if not c.at_least else ">=", "passes_when": c.passes_when,
            "seconds": round(self.seconds, 2), "details": c.details,
        }


@dataclass(frozen=True)
class Phenomenon:
    """One entry of the atlas.

    runs(fast) -> list[RunSpec]: the controlled experiment (fast: <= 90 s on 2 cores).
    predict(runs) -> prediction: from lmech.theory only, never from measurements.
    measure(store, runs) -> measurement: read from the store's records.
    compare(prediction, measurement) -> Comparison.
    figure(prediction, measurement, comparison) -> matplotlib Figure with both.
    """

    name: str
    claim: str
    formula: str
    source: str
    runs: Callable[[bool], list]
    predict: Callable[[list], Any]
    measure: Callable[[Any, list], Any]
    compare: Callable[[Any, Any], Comparison]
    figure: Callable[[Any, Any, Comparison], Any]


def figure_png(figure) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
