"""Boxed-answer extraction: conventions, and bounded time on adversarial strings."""

import time

import pytest

from sspo_verl.reward.answer_extraction import canonical_answer, last_boxed_answer, strip_percent


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so the answer is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{5} first, then \boxed{\{1,2\}}", r"\{1,2\}"),  # the last box wins; escaped braces balance
        (r"\boxed{\boxed{7}}", "7"),  # nested: the last command is the inner one
        (r"$\boxed 5$ done", "5"),  # brace-less form runs to the next $
        (r"\fbox{3}", "3"),
        (r"\boxed { 42 }", "42"),
        (r"\boxed{x^{2}+\sqrt{y_{1}}}", r"x^{2}+\sqrt{y_{1}}"),
        (r"\boxed{12", None),  # truncated output: unbalanced
        (r"\boxed{5} and later \boxed{", None),  # a broken last box is no answer, no fallback to an earlier one
        (r"\boxed{}", None),
        (r"\boxedx", None),
        ("no answer here, 42", None),
        ("", None),
        (None, None),
    ],
)
def test_last_boxed_answer(text, expected):
    assert last_boxed_answer(text) == expected


def test_answer_longer_than_limit_is_no_answer():
    assert last_boxed_answer(r"\boxed{" + "1" * 50 + "}", max_answer_chars=50) == "1" * 50
    assert last_boxed_answer(r"\boxed{" + "1" * 51 + "}", max_answer_chars=50) is None


def test_adversarial_strings_are_fast():
    cases = [
        "x" * 50_000_000 + r"\boxed{7}",  # 50 MB of junk before the answer
        r"\boxed" + "{" * 1_000_000,  # a million unbalanced braces
        (r"\frac{" * 200_000) + r"\boxed{" + "{" * 100_000,
        "\x00\xff\ud800" * 1_000_000,  # binary junk, lone surrogates
    ]
    for text in cases:
        start = time.perf_counter()
        last_boxed_answer(text)
        assert time.perf_counter() - start < 2.0, repr(text[:20])
    assert last_boxed_answer(cases[0]) == "7"


def test_canonical_answer_is_conservative():
    assert canonical_answer(r"\left( \dfrac{1}{2}, 3 \right).") == r"(\frac{1}{2},3)"
    assert canonical_answer(r"$1\!000\,x$") == "1000x"
    assert canonical_answer(r"\leftarrow") == r"\leftarrow"  # another command, not \left
    assert canonical_answer("12") != canonical_answer("1.2")


def test_strip_percent():
    assert strip_percent(r"10\%") == "10"
    assert strip_percent("5 %") == "5"
    assert strip_percent("5") == "5"
