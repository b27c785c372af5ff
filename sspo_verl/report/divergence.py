"""Divergence: where a run logged NaN or ±inf, so that a diverged run is reported as diverged — the step of its
first non-finite value, per metric — instead of being averaged over the steps that stayed finite.

The figures and tables use finite values only (:mod:`sspo_verl.report.aggregate`); the report puts this
section next to the runs, and a table cell whose group logged only non-finite values says ``NaN``, not
"not logged".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sspo_verl.report.runs import Run

__all__ = ["Divergence", "divergence_markdown", "find_divergence", "only_non_finite"]

_LISTED_METRICS = 6


def _bad(value: float) -> bool:
    return math.isnan(value) or math.isinf(value)


@dataclass(frozen=True)
class Divergence:
    """One run's non-finite values.

    Attributes:
        run: the run's name (its directory's base name).
        label: its group.
        seed: its seed (None: unknown).
        first_step: the first step at which any metric was NaN / inf.
        metrics: ``{metric: first non-finite step}``, earliest first.
        first_values: ``{metric: the value logged there}`` (nan, inf or -inf).
    """

    run: str
    label: str
    seed: object
    first_step: int
    metrics: dict
    first_values: dict


def find_divergence(runs: Sequence[Run]) -> list[Divergence]:
    """Every run with a NaN / inf value, ordered by the step it first appeared."""
    found = []
    for run in runs:
        first: dict[str, int] = {}
        values: dict[str, float] = {}
        for step in sorted(run.steps):
            for key, value in run.steps[step].items():
                if key not in first and value is not None and _bad(value):
                    first[key], values[key] = step, value
        if first:
            ordered = dict(sorted(first.items(), key=lambda kv: (kv[1], kv[0])))
            found.append(Divergence(run.name, run.label, run.seed, min(first.values()), ordered, values))
    return sorted(found, key=lambda d: (d.first_step, d.label, d.run))


def only_non_finite(runs: Sequence[Run], key: str) -> bool:
    """Whether some run logged ``key`` and every value any run logged for it is NaN / inf."""
    logged = [v for run in runs for row in run.steps.values() if (v := row.get(key)) is not None]
    return bool(logged) and all(_bad(v) for v in logged)


def divergence_markdown(found: Sequence[Divergence]) -> list[str]:
    """The report's ``## Divergence`` section (empty when nothing diverged)."""
    if not found:
        return []
    lines = [
        "## Divergence",
        "",
        f"**{len(found)} run(s) logged NaN or inf** — diverged; their curves and table cells use the finite steps "
        "only, so read them with this table.",
        "",
        "| group | seed | run | first non-finite step | metrics (first non-finite step, value) |",
        "|---|---|---|---|---|",
    ]
    for d in found:
        shown = list(d.metrics.items())[:_LISTED_METRICS]
        metrics = ", ".join(f"`{k}` ({s}, {d.first_values[k]})" for k, s in shown)
        if len(d.metrics) > len(shown):
            metrics += f", … {len(d.metrics) - len(shown)} more"
        seed = d.seed if d.seed is not None else "?"
        lines.append(f"| {d.label} | {seed} | `{d.run}` | {d.first_step} | {metrics} |")
    return lines + [""]
