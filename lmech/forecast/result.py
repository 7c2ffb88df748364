"""A forecast as every `lmech forecast` command prints it, and its track record from the atlas.

One job: the record type and the lookup of the atlas verdict that scores a forecast. The
forecast functions themselves live beside this module, one per decision (max_lr, batch,
lr_transfer, compute, curve); each returns a `Forecast`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Forecast", "track_record"]


def _finite(value: Any) -> Any:
    """NaN and infinities as None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class Forecast:
    """One forecast: a number with an interval, its unit, what it was computed from and its record.

    forecast: the point forecast (e.g. a learning rate); interval: (low, high), the stated
    uncertainty band (the docstring of the function that made it says which: a fit's 95%
    interval, a theory window such as [2/λ, 4/λ], ...); unit: e.g. "learning rate", "examples",
    "parameters"; basis: the measurement it was computed from, in words with numbers (e.g.
    "top Hessian eigenvalue 12.3 at initialization"); phenomenon: the atlas phenomenon whose
    verdict scores this forecast on held-out runs; track_record: that verdict's error,
    tolerance and outcome from the newest atlas report (None if it has not been run);
    details: the numbers behind it; check: filled by --check (the held-out measurement and the
    forecast's error on the user's model).
    """

    name: str
    forecast: float
    interval: tuple[float, float]
    unit: str
    basis: str
    phenomenon: str
    track_record: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return _finite({"name": self.name, "forecast": float(self.forecast),
                        "interval": [float(self.interval[0]), float(self.interval[1])], "unit": self.unit,
                        "basis": self.basis, "phenomenon": self.phenomenon, "track_record": self.track_record,
                        "details": self.details, "check": self.check})


def track_record(phenomenon: str, reports: str | Path) -> dict[str, Any] | None:
    """The newest atlas verdict named `phenomenon` below the reports folder, or None.

    Reads `<reports>/<atlas run>/verdicts.json` and `provenance.json` as `lmech atlas` writes
    them (never executes anything from them). Returns {"phenomenon", "error", "tolerance",
    "direction", "passed", "mode" ("fast"/"full"), "date", "report" (the folder)}. Folders
    that are unreadable or malformed are skipped.
    """
    root = Path(reports)
    if not root.is_dir():
        return None
    found = []
    for folder in root.iterdir():
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            records = json.loads((folder / "verdicts.json").read_text())
            provenance = json.loads((folder / "provenance.json").read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(records, list) or not isinstance(provenance, dict):
            continue
        for record in records:
            if isinstance(record, dict) and record.get("name") == phenomenon:
                found.append((str(provenance.get("date") or ""), folder.name, record, provenance))
    if not found:
        return None
    date, name, record, provenance = max(found, key=lambda row: (row[0], row[1]))
    number = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return {"phenomenon": phenomenon, "error": number(record.get("error")),
            "tolerance": number(record.get("tolerance")), "direction": str(record.get("direction", "<=")),
            "passed": bool(record.get("passed")), "mode": provenance.get("mode"), "date": date or None,
            "report": str(root / name)}
