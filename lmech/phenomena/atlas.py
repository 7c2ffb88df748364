"""Run phenomena end to end: train (resuming from the store), predict, measure, compare, draw."""

import time
from collections.abc import Callable

from lmech.engine import execute
from lmech.phenomena.verdict import Phenomenon, Verdict, figure_png
from lmech.spec import RunSpec, set_field
from lmech.store import Store

__all__ = ["run_phenomenon", "apply_overrides"]


def apply_overrides(runs: list[RunSpec], overrides: dict[str, object]) -> list[RunSpec]:
    """Set dotted fields (e.g. {"steps": 500}) on every run spec, with validation."""
    if not overrides:
        return runs
    out = []
    for spec in runs:
        tree = spec.model_dump(mode="json")
        for path, value in overrides.items():
            try:
                set_field(tree, path, value)
            except ValueError as error:
                raise ValueError(f"--set {path}: {error}") from None
        out.append(RunSpec.model_validate(tree))
    return out


def run_phenomenon(phenomenon: Phenomenon, store: Store, fast: bool,
                   overrides: dict[str, object] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   workers: int = 1, executor: str | None = None, ray_address: str | None = None) -> Verdict:
    """Train what the phenomenon needs (finished runs are reused), then judge it.

    executor None: workers > 1 trains independent ensemble jobs in that many processes, else in
    this one; "local" | "process" | "ray" choose (see `lmech.engine.execute`).
    """
    start = time.perf_counter()
    runs = apply_overrides(phenomenon.runs(fast), overrides or {})
    executor = executor or ("process" if workers > 1 else "local")
    execute(runs, store, executor=executor, workers=workers, sweep=phenomenon.name, progress=progress,
            ray_address=ray_address)
    prediction = phenomenon.predict(runs)
    measurement = phenomenon.measure(store, runs)
    comparison = phenomenon.compare(prediction, measurement)
    png = figure_png(phenomenon.figure(prediction, measurement, comparison))
    return Verdict(phenomenon.name, phenomenon.claim, phenomenon.formula, phenomenon.source,
                   comparison, time.perf_counter() - start, png)
