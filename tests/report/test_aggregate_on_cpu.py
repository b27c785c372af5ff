"""Statistics over seeds, hand-computed: curves with uneven steps, final / best / mean, NaN handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sspo_verl.report.aggregate import group_curve, run_stat, seed_stat, smooth
from sspo_verl.report.runs import run_from_records


def _run(name, seed, values):
    return run_from_records(name, "grpo", seed, [{"step": s, "data": {"r": v}} for s, v in values.items()])


A = _run("a", 1, {1: 1.0, 2: 3.0, 3: 2.0})
B = _run("b", 2, {1: 3.0, 2: 5.0})  # stopped a step earlier


def test_curve_mean_std_and_uneven_steps():
    curve = group_curve([A, B], "r")
    assert curve.steps.tolist() == [1, 2, 3]
    assert curve.mean.tolist() == [2.0, 4.0, 2.0]  # (1+3)/2, (3+5)/2, step 3 only seed a
    assert curve.std[:2] == pytest.approx([math.sqrt(2), math.sqrt(2)])  # sample std of {1, 3}: sqrt(2)
    assert np.isnan(curve.std[2]) and curve.n.tolist() == [2, 2, 1]
    assert group_curve([A, B], "missing") is None


def test_smoothing_is_a_trailing_mean_over_logged_points():
    assert smooth([1.0, 3.0, 2.0], 2) == [1.0, 2.0, 2.5]
    assert group_curve([A], "r", window=3).mean.tolist() == [1.0, 2.0, 2.0]


def test_final_best_mean_per_run_and_over_seeds():
    assert (run_stat(A, "r", "final"), run_stat(A, "r", "best"), run_stat(A, "r", "mean")) == (2.0, 3.0, 2.0)
    final = seed_stat([A, B], "r", "final")  # {2, 5}
    assert (final.mean, final.n) == (3.5, 2) and final.std == pytest.approx(math.sqrt(4.5))
    one = seed_stat([A], "r", "best")
    assert (one.mean, one.std, one.n) == (3.0, None, 1)
    assert seed_stat([A, B], "missing", "final") is None
    with pytest.raises(ValueError, match="stat='last'"):
        run_stat(A, "r", "last")


def test_nan_values_are_ignored():
    run = _run("c", 3, {1: 1.0, 2: float("nan"), 3: 4.0})
    assert run_stat(run, "r", "mean") == 2.5 and group_curve([run], "r").steps.tolist() == [1, 3]
