"""learning_coefficient: Aoyagi's deep-linear formula vs the independent reduced-rank closed form,
the regular and one-layer special cases, and a brute-force search over index sets."""

import itertools
import math
from fractions import Fraction

import pytest

from lmech.errors import InputError
from lmech.theory.learning_coefficient import (
    deep_linear_learning_coefficient,
    deep_linear_parameter_count,
    reduced_rank_regression_coefficient,
)


def test_two_layers_equal_the_reduced_rank_closed_form_on_a_grid():
    """Aoyagi (2024) must reproduce Aoyagi & Watanabe (2005) exactly for L = 2: 1,792 cases."""
    for m, h, n in itertools.product(range(1, 9), repeat=3):
        for r in range(min(m, h, n) + 1):
            assert deep_linear_learning_coefficient([m, h, n], r) == reduced_rank_regression_coefficient(m, h, n, r)


def test_one_layer_is_regular():
    assert deep_linear_learning_coefficient([7, 3], 2) == 10.5


def test_no_redundancy_is_regular_on_the_rank_r_manifold():
    """H = r: the product is any rank-r matrix, a manifold of dimension r (M + N - r): lambda = half of it."""
    for m, n in [(3, 5), (6, 6), (8, 2)]:
        for r in range(1, min(m, n) + 1):
            assert reduced_rank_regression_coefficient(m, r, n, r) == r * (m + n - r) / 2


def test_tiny_cases_by_hand():
    assert reduced_rank_regression_coefficient(1, 1, 1, 0) == 0.5  # K = (ab)^2: lambda 1/2 (multiplicity 2)
    assert reduced_rank_regression_coefficient(1, 1, 1, 1) == 0.5
    assert reduced_rank_regression_coefficient(10, 6, 4, 2) == 16.0  # case 3: (HN - Hr + Mr) / 2


@pytest.mark.parametrize("widths", [(10, 6, 6, 4), (8, 8, 8, 8), (5, 3, 7, 4, 6), (2, 9, 9, 2)])
def test_bounded_by_regular_and_monotone_in_rank(widths):
    values = [deep_linear_learning_coefficient(widths, r) for r in range(min(widths) + 1)]
    assert all(0 < v <= deep_linear_parameter_count(widths) / 2 for v in values)
    assert all(a <= b for a, b in zip(values, values[1:]))


def _brute_force(widths, r):
    """Every index set satisfying Aoyagi's three conditions, and the formula evaluated on each."""
    deltas = [w - r for w in widths]
    out = []
    for size in range(2, len(deltas) + 1):
        for subset in itertools.combinations(range(len(deltas)), size):
            rest = [deltas[j] for j in range(len(deltas)) if j not in subset]
            chosen = [deltas[j] for j in subset]
            ell, total = size - 1, sum(chosen)
            if rest and not max(chosen) < min(rest):
                continue
            if not (total >= ell * max(chosen) and (not rest or total < ell * min(rest))):
                continue
            a = total - (math.ceil(Fraction(total, ell)) - 1) * ell
            pairs = sum(x * y for x, y in itertools.combinations(chosen, 2))
            out.append(float(Fraction(r * (widths[0] + widths[-1]) - r * r, 2) + Fraction(a * (ell - a), 4 * ell)
                             - Fraction(ell * (ell - 1), 4) * Fraction(total, ell) ** 2 + Fraction(pairs, 2)))
    return out


def test_subset_search_agrees_with_brute_force():
    for widths in itertools.product([1, 3, 4, 6], repeat=4):
        for r in range(min(widths) + 1):
            found = _brute_force(widths, r)
            assert found, (widths, r)
            assert all(v == found[0] for v in found)
            assert deep_linear_learning_coefficient(widths, r) == found[0]


def test_bad_input_is_one_line():
    with pytest.raises(InputError):
        deep_linear_learning_coefficient([4, 3], 5)
    with pytest.raises(InputError):
        deep_linear_learning_coefficient([4], 1)
    with pytest.raises(InputError):
        reduced_rank_regression_coefficient(3, 0, 3, 0)
