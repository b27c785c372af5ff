"""sspo_verl.eval.stats against hand-computed cases and against scipy called directly."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from sspo_verl.eval.stats import paired_difference, seed_interval


def test_interval_of_three_seeds_by_hand():
    # mean 2, s = 1, sem = 1/sqrt(3); t(0.975, df=2) = 4.302653 -> half width 4.302653 / sqrt(3) = 2.484138
    iv = seed_interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.n == 3
    assert iv.half_width == pytest.approx(2.484138, abs=1e-6)
    assert iv.format() == "2.00 ± 2.48 (n=3)" and iv.note is None


def test_interval_of_two_seeds_by_hand():
    # mean 11, s = sqrt(2), sem = 1; t(0.975, df=1) = 12.706205: two seeds say little
    iv = seed_interval([10.0, 12.0])
    assert iv.half_width == pytest.approx(12.706205, abs=1e-6)


def test_one_seed_has_no_interval_and_says_so():
    iv = seed_interval([46.6])
    assert iv.half_width is None and iv.format() == "46.60 (n=1)"
    assert iv.note == "not enough seeds (n=1; an interval needs 2)"


def test_equal_seeds_give_a_zero_width_interval():
    assert seed_interval([50.0, 50.0, 50.0]).half_width == 0.0


@pytest.mark.parametrize("values", [[41.2, 44.0, 43.1], [10.0, 30.0, 20.0, 25.0, 5.0], [0.0, 100.0]])
def test_interval_equals_scipy_t_interval(values):
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / len(values), scale=stats.sem(values))
    iv = seed_interval(values)
    assert (iv.mean - iv.half_width, iv.mean + iv.half_width) == pytest.approx((low, high), rel=1e-12)


@pytest.mark.parametrize("values", [[], [1.0, math.nan]])
def test_bad_values_are_refused(values):
    with pytest.raises(ValueError):
        seed_interval(values)


def test_paired_difference_by_hand():
    # differences (2, 3, 0): mean 5/3, s = sqrt(42/18) = 1.527525, sem = 0.881917, t = 1.889822 (df 2);
    # two-sided p = 1 - t/sqrt(2 + t^2) = 1 - 1.889822/2.360387 = 0.199359; CI 5/3 ± 4.302653 * 0.881917
    d = paired_difference({1: 3.0, 2: 5.0, 3: 4.0}, {1: 1.0, 2: 2.0, 3: 4.0})
    assert d.mean == pytest.approx(5 / 3) and d.n == 3 and d.seeds == (1, 2, 3)
    assert d.p_value == pytest.approx(0.199359, abs=1e-6)
    assert (d.low, d.high) == pytest.approx((5 / 3 - 3.794583, 5 / 3 + 3.794583), abs=1e-5)
    assert d.format() == "+1.67 [-2.13, +5.46], p=0.2 (n=3)"


def test_paired_difference_equals_scipy_ttest_rel_on_the_common_seeds():
    candidate = {1: 45.0, 2: 47.5, 3: 44.1, 4: 46.0, 7: 50.0}
    baseline = {1: 44.0, 2: 45.0, 3: 44.5, 4: 43.0, 5: 40.0}  # seed 5 / 7: one side only -> left out
    d = paired_difference(candidate, baseline)
    common = [1, 2, 3, 4]
    ref = stats.ttest_rel([candidate[s] for s in common], [baseline[s] for s in common])
    ci = ref.confidence_interval(0.95)
    assert d.seeds == (1, 2, 3, 4)
    assert (d.p_value, d.low, d.high) == pytest.approx((ref.pvalue, ci.low, ci.high), rel=1e-12)


def test_one_common_seed_is_not_enough():
    d = paired_difference({1: 50.0, 2: 52.0}, {1: 48.0})
    assert d.p_value is None and d.mean == 2.0 and "not enough seeds" in d.format()


def test_no_common_seed_is_an_error():
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({1: 1.0}, {2: 1.0})
