"""compare_optimizers: held-out losses against the trainer's own test loss, lr selection on
validation, and the calibration controls: a renamed copy of an optimizer shows no significant
difference in at least 19 of 20 seed sets, while a real difference (adamw vs sgd on a short
budget) is significant in every set."""

import numpy as np
import pytest

from lmech.compare import analyze, comparison_runs, compare_optimizers, heldout_losses
from lmech.engine import execute
from lmech.errors import InputError
from lmech.models.mlp import ModelSpec
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.store import Store
from lmech.tasks.teacher_student import TeacherStudentSpec

GRID = [3e-3, 1e-2, 3e-2]


def _base(steps: int = 60, observe=None) -> RunSpec:
    return RunSpec(task=TeacherStudentSpec(input_dim=8, n_train=64, n_test=128, noise=0.3),
                   model=ModelSpec(width=16, depth=1), steps=steps, observe=observe or {})


def test_heldout_halves_average_to_the_trainers_test_loss(tmp_path):
    base = _base(observe={"loss": ObserveSpec(every=60)})
    runs = comparison_runs(base, {"adamw": OptimizerSpec(name="adamw"), "sgd": OptimizerSpec(name="sgd")},
                           GRID, [0, 1])
    store = Store(tmp_path)
    execute(runs["adamw"], store)
    val, test = heldout_losses(store, runs["adamw"])
    recorded = np.array([store.series(s.id, "loss/test")[1][-1] for s in runs["adamw"]])
    np.testing.assert_allclose((val + test) / 2, recorded, rtol=1e-5)  # 64 + 64 examples: the halves' mean
    assert not np.allclose(val, test)  # two different halves


def test_the_lr_is_chosen_on_validation_and_a_diverged_lr_is_never_chosen(tmp_path):
    store = Store(tmp_path)
    grid = [1e-2, 3e-2, 50.0]  # 50 diverges with sgd
    result = compare_optimizers(store, _base(), {"sgd": OptimizerSpec(name="sgd"), "adamw": OptimizerSpec(name="adamw")},
                                grid, [0, 1, 2])
    sgd = result.results["sgd"]
    assert np.isinf(sgd.validation[2]).any()
    means = sgd.validation.mean(axis=1)
    assert sgd.best_lr == grid[int(np.argmin(means))] != 50.0
    np.testing.assert_allclose(sgd.test_interval.estimate, sgd.test.mean())


def _seed_sets(count: int, size: int, offset: int = 0) -> list[list[int]]:
    return [[offset + 100 * s + i for i in range(size)] for s in range(count)]


def test_a_renamed_copy_on_the_same_seeds_is_identical():
    """The protocol treats labels neutrally: the copy's runs are the same runs (same ids)."""
    runs = comparison_runs(_base(), {"adamw": OptimizerSpec(name="adamw"), "copy": OptimizerSpec(name="adamw")},
                           GRID, [0, 1, 2])
    assert [s.id for s in runs["adamw"]] == [s.id for s in runs["copy"]]


@pytest.mark.slow
def test_renamed_copy_on_independent_seeds_shows_no_difference_in_19_of_20_sets(tmp_path):
    """Calibration: the copy trains on seeds disjoint from the original's, so the comparison sees
    two independent draws of one procedure; the interval may exclude 0 in at most 1 of 20 sets."""
    store = Store(tmp_path)
    originals, copies = _seed_sets(20, 5), _seed_sets(20, 5, offset=50)
    contenders = {"adamw": OptimizerSpec(name="adamw"), "adamw_copy": OptimizerSpec(name="adamw")}
    all_runs = [comparison_runs(_base(), contenders, GRID, {"adamw": a, "adamw_copy": b})
                for a, b in zip(originals, copies)]
    execute([s for runs in all_runs for label in runs for s in runs[label]], store)
    significant = [analyze(store, runs).differences[("adamw", "adamw_copy")].excludes_zero for runs in all_runs]
    assert sum(significant) <= 1, significant


@pytest.mark.slow
def test_a_real_difference_is_significant_in_every_set_positive_control(tmp_path):
    store = Store(tmp_path)
    contenders = {"adamw": OptimizerSpec(name="adamw"), "sgd": OptimizerSpec(name="sgd")}
    all_runs = [comparison_runs(_base(steps=15), contenders, GRID, seeds) for seeds in _seed_sets(5, 8)]
    execute([s for runs in all_runs for label in runs for s in runs[label]], store)
    for runs in all_runs:
        d = analyze(store, runs).differences[("adamw", "sgd")]
        assert d.excludes_zero and d.estimate < 0, d


def test_too_small_a_comparison_is_refused():
    with pytest.raises(InputError, match="at least 2 optimizers"):
        comparison_runs(_base(), {"adamw": OptimizerSpec(name="adamw")}, GRID, [0, 1])
    with pytest.raises(InputError, match="at least 2 values"):
        comparison_runs(_base(), {"a": OptimizerSpec(name="adamw"), "b": OptimizerSpec(name="sgd")}, [1e-2], [0, 1])
    with pytest.raises(InputError, match="2 distinct seeds"):
        comparison_runs(_base(), {"a": OptimizerSpec(name="adamw"), "b": OptimizerSpec(name="sgd")}, GRID, [0])
