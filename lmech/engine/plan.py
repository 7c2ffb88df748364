"""Turn run specs into ensemble jobs: group by everything but the scalars, keep the groups with work left.

A run's numbers depend, in the last float32 bits, on which runs share its ensemble job (batched
kernels block their sums by the stacked shape; measured in tests/engine/test_resume.py). So a job
is always the whole group (in sweep order, split into max_ensemble chunks) that an uninterrupted
sweep would train, even when some of its runs already finished: resuming retrains the finished
members of a partly finished job and writes only the missing runs, which are then byte-identical
to the uninterrupted sweep's.
"""

from lmech.spec import RunSpec, group_key
from lmech.store import Store

__all__ = ["plan_jobs"]


def plan_jobs(runs: list[RunSpec], store: Store, max_ensemble: int = 256) -> tuple[list[list[RunSpec]], int]:
    """Return (jobs, skipped): each job is a list of specs trained as one ensemble, and `skipped`
    the number of distinct runs already complete in `store`.

    Duplicate specs collapse to one run. Groups larger than max_ensemble are split into chunks; a
    chunk whose runs are all complete is dropped, any other is kept whole (see the module docstring).
    """
    unique = list({spec.id: spec for spec in runs}.values())
    done = {spec.id for spec in unique if store.has(spec.id)}
    groups: dict[str, list[RunSpec]] = {}
    for spec in unique:
        groups.setdefault(group_key(spec), []).append(spec)
    jobs = []
    for members in groups.values():
        for start in range(0, len(members), max_ensemble):
            chunk = members[start:start + max_ensemble]
            if any(spec.id not in done for spec in chunk):
                jobs.append(chunk)
    return jobs, len(done)
