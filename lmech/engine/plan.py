"""Turn run specs into ensemble jobs: drop finished runs, group by everything but the scalars."""

from lmech.spec import RunSpec, group_key
from lmech.store import Store

__all__ = ["plan_jobs"]


def plan_jobs(runs: list[RunSpec], store: Store, max_ensemble: int = 256) -> tuple[list[list[RunSpec]], int]:
    """Return (jobs, skipped): each job is a list of specs trained as one ensemble.

    Duplicate specs collapse to one run; finished runs in `store` are skipped.
    Groups larger than max_ensemble are split into chunks.
    """
    seen, pending, skipped = set(), [], 0
    for spec in runs:
        if spec.id in seen:
            continue
        seen.add(spec.id)
        if store.has(spec.id):
            skipped += 1
        else:
            pending.append(spec)
    groups: dict[str, list[RunSpec]] = {}
    for spec in pending:
        groups.setdefault(group_key(spec), []).append(spec)
    jobs = []
    for members in groups.values():
        for start in range(0, len(members), max_ensemble):
            jobs.append(members[start:start + max_ensemble])
    return jobs, skipped
