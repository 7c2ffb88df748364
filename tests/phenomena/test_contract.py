"""Contract suite over every registered phenomenon: a claim with its source, valid fast and
full experiments whose observables exist, a fast mode no bigger than the full one, and a
prediction computed from the specs alone (theory only, no store)."""

import pytest

from lmech.observables import REGISTRY as OBSERVABLES
from lmech.phenomena import PHENOMENA
from lmech.spec import RunSpec


def _work(specs: list[RunSpec]) -> int:
    return sum(spec.steps for spec in specs)


@pytest.mark.parametrize("name", sorted(PHENOMENA))
def test_phenomenon_contract(name):
    phenomenon = PHENOMENA[name]
    assert phenomenon.name == name and phenomenon.claim and phenomenon.formula and phenomenon.source
    fast, full = phenomenon.runs(True), phenomenon.runs(False)
    for specs in (fast, full):
        assert specs and all(isinstance(s, RunSpec) for s in specs)
        for spec in specs:
            assert set(spec.observe) <= set(OBSERVABLES), set(spec.observe) - set(OBSERVABLES)
    assert _work(fast) <= _work(full), "the fast mode should not be the bigger experiment"
    assert phenomenon.predict(fast) is not None  # no store passed: prediction is theory only
