"""pass@k and avg@n against the closed form with exact integer binomials."""

from fractions import Fraction
from math import comb

import pytest

from sspo_verl.eval.pass_at_k import avg_at_n, mean_pass_at_k, pass_at_k


def closed_form(n, c, k):
    """1 - C(n-c, k) / C(n, k), exactly (math.comb is 0 when n-c < k)."""
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


def test_matches_closed_form_exhaustively():
    for n in range(1, 33):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)


@pytest.mark.parametrize("n, c, k", [(1000, 1, 500), (1000, 3, 10), (2048, 17, 1024), (500, 250, 250)])
def test_large_n_is_stable(n, c, k):
    # C(2048, 1024) has ~600 digits: a direct float ratio overflows; the product form does not.
    assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), rel=1e-10, abs=1e-12)


def test_special_cases():
    assert pass_at_k(16, 0, 4) == 0.0
    assert pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(16, 13, 4) == 1.0  # n - c < k: every draw of 4 has a correct one
    assert pass_at_k(16, 5, 1) == pytest.approx(5 / 16)  # pass@1 = c/n
    values = [pass_at_k(16, 3, k) for k in range(1, 17)]
    assert values == sorted(values)  # non-decreasing in k


def test_means():
    assert avg_at_n(4, [0, 2, 4]) == pytest.approx((0 + 0.5 + 1) / 3)
    assert mean_pass_at_k(4, [0, 2, 4], 2) == pytest.approx((0 + closed_form(4, 2, 2) + 1) / 3)
    assert mean_pass_at_k(4, [1, 3], 1) == pytest.approx(avg_at_n(4, [1, 3]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        avg_at_n(4, [])
    with pytest.raises(ValueError):
        avg_at_n(4, [5])
