"""Statistics over seeds: per-step curves (mean, std) and per-run summaries (final, best, mean).

Spread over seeds is the sample standard deviation (``ddof=1``); with one seed it is undefined (None, no band).
A step at which only some seeds logged the metric averages those seeds (``n`` says how many).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from sspo_verl.report.logs import finite
from sspo_verl.report.runs import Run

__all__ = ["Curve", "SeedStat", "group_curve", "run_stat", "seed_stat", "smooth"]

STATS = ("final", "best", "mean")


@dataclass
class Curve:
    """A group's metric per step.

    Attributes:
        steps: steps where at least one seed logged it. Shape: (S,).
        mean: mean over those seeds. Shape: (S,).
        std: sample std over those seeds, NaN where fewer than two. Shape: (S,).
        n: seeds averaged at each step. Shape: (S,).
        per_run: ``(run name, steps, values)`` of each seed (after smoothing).
    """

    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray
    per_run: list


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` logged points (``window <= 1``: unchanged)."""
    if window <= 1:
        return list(values)
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _finite_series(run: Run, key: str) -> tuple[list[int], list[float]]:
    steps, values = run.series(key)
    kept = [(s, v) for s, v in zip(steps, values) if finite(v)]
    return [s for s, _ in kept], [v for _, v in kept]


def group_curve(runs: Sequence[Run], key: str, window: int = 1) -> Optional[Curve]:
    """Mean and spread over a group's seeds of one metric per step; None if no seed logged it."""
    per_run = []
    by_step: dict[int, list[float]] = {}
    for run in runs:
        steps, values = _finite_series(run, key)
        if not steps:
            continue
        values = smooth(values, window)
        per_run.append((run.name, steps, values))
        for step, value in zip(steps, values):
            by_step.setdefault(step, []).append(value)
    if not by_step:
        return None
    steps = np.array(sorted(by_step))
    groups = [by_step[s] for s in steps]
    return Curve(
        steps=steps,
        mean=np.array([np.mean(v) for v in groups]),
        std=np.array([np.std(v, ddof=1) if len(v) > 1 else np.nan for v in groups]),
        n=np.array([len(v) for v in groups]),
        per_run=per_run,
    )


def run_stat(run: Run, key: str, stat: str) -> Optional[float]:
    """One run's ``final`` (value at its last logged step), ``best`` (max) or ``mean`` (over logged steps)."""
    if stat not in STATS:
        raise ValueError(f"stat={stat!r}: expected one of {STATS}")
    _, values = _finite_series(run, key)
    if not values:
        return None
    if stat == "final":
        return values[-1]
    if stat == "best":
        return max(values)
    return statistics.fmean(values)


@dataclass(frozen=True)
class SeedStat:
    """A statistic over a group's seeds: mean, sample std (None for one seed), and the seeds counted."""

    mean: float
    std: Optional[float]
    n: int


def seed_stat(runs: Sequence[Run], key: str, stat: str) -> Optional[SeedStat]:
    """Mean ± std over seeds of :func:`run_stat`; None if no seed logged the metric."""
    values = [v for v in (run_stat(r, key, stat) for r in runs) if v is not None]
    if not values:
        return None
    return SeedStat(
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        n=len(values),
    )
