"""Statistics over the seeds of a sweep: a mean with its 95 % t-interval, and a paired comparison with a baseline.

The seed is the unit of replication: one value per seed (a run's accuracy on a benchmark). With the 2-5 seeds an
RL ablation affords, the Student-t interval keeps its coverage (measured on normal data, 400 draws each: 94 % at
n=2, 95 % at n=3, 94 % at n=5) where a bootstrap does not (percentile 52 / 72 / 83 %, BCa 52 / 70 / 82 %:
``benchmarks/seed_interval_coverage.py``), so both use scipy's t distribution:

- :func:`seed_interval`: ``mean ± t_{0.975, n-1} · s / √n`` (``scipy.stats.t.interval`` with ``scipy.stats.sem``);
- :func:`paired_difference`: ``scipy.stats.ttest_rel`` over the seeds both sides ran, each seed's value the
  accuracy on the same problems (so the per-seed difference is the mean of the per-problem differences): the mean
  difference, its 95 % interval and the two-sided p-value.

Fewer than 2 values (seeds) give no interval: ``half_width``/``p_value`` are None and ``note`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

CONFIDENCE = 0.95
NOT_ENOUGH = "not enough seeds (n={n}; an interval needs 2)"


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its two-sided interval (``half_width`` None when n < 2)."""

    mean: float
    n: int
    half_width: Optional[float]
    confidence: float = CONFIDENCE

    @property
    def note(self) -> Optional[str]:
        return NOT_ENOUGH.format(n=self.n) if self.half_width is None else None

    def format(self, digits: int = 2) -> str:
        """``46.60 ± 1.23 (n=3)``; ``46.60 (n=1)`` without an interval."""
        if self.half_width is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f} (n={self.n})"


@dataclass(frozen=True)
class Difference:
    """``candidate − baseline`` paired over seeds: the mean difference, its interval and the t-test's p-value."""

    mean: float
    n: int
    low: Optional[float]
    high: Optional[float]
    p_value: Optional[float]
    seeds: tuple
    confidence: float = CONFIDENCE

    @property
    def note(self) -> Optional[str]:
        return NOT_ENOUGH.format(n=self.n) if self.p_value is None else None

    def format(self, digits: int = 2) -> str:
        """``+2.20 [−0.41, +4.81], p=0.08 (n=3)``."""
        if self.p_value is None:
            return f"{self.mean:+.{digits}f} (n={self.n}: not enough seeds)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}], p={self.p_value:.2g} (n={self.n})"


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` (one per seed) and its Student-t interval.

    Raises:
        ValueError: no values, or a value that is not finite.
    """
    from scipy import stats

    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("seed_interval: no values")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"seed_interval: values must be finite, got {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, n, None, confidence)
    sem = float(stats.sem(xs))
    if sem == 0.0:  # every seed agrees: t.interval would return (nan, nan) for scale 0
        return Interval(mean, n, 0.0, confidence)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Interval(mean, n, float(high - mean), confidence)


def paired_difference(
    candidate: dict, baseline: dict, confidence: float = CONFIDENCE
) -> Difference:
    """``candidate − baseline`` over the seeds present on both sides (``{seed: accuracy}``), by ``ttest_rel``.

    Seeds that only one side has are left out (a failed run); the pairs used are in ``Difference.seeds``.

    Raises:
        ValueError: no seed in common.
    """
    from scipy import stats

    seeds = tuple(sorted(set(candidate) & set(baseline)))
    if not seeds:
        raise ValueError(
            f"paired_difference: no seed in common (candidate {sorted(candidate)}, baseline {sorted(baseline)})"
        )
    a = [float(candidate[s]) for s in seeds]
    b = [float(baseline[s]) for s in seeds]
    diffs = [x - y for x, y in zip(a, b)]
    n = len(seeds)
    mean = sum(diffs) / n
    if n < 2:
        return Difference(mean, n, None, None, None, seeds, confidence)
    if all(d == diffs[0] for d in diffs):  # zero spread: the t statistic is undefined (scipy returns nan)
        return Difference(mean, n, mean, mean, 1.0 if mean == 0 else 0.0, seeds, confidence)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence)
    return Difference(mean, n, float(ci.low), float(ci.high), float(result.pvalue), seeds, confidence)
