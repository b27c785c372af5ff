"""Markdown tables: one row per group, each cell a per-run statistic as mean ± std over the group's seeds.

A cell reads ``0.4123 ± 0.0100`` (two or more seeds; sample std), ``0.4123`` (one seed), ``—`` (no seed logged
the metric). A column no group logged is left out and named in the returned ``missing`` list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

from sspo_verl.report.aggregate import SeedStat, seed_stat
from sspo_verl.report.catalogue import Column, Table, validation_keys, validation_title
from sspo_verl.report.divergence import only_non_finite
from sspo_verl.report.runs import Run

__all__ = ["format_stat", "table_columns", "table_markdown", "table_rows"]


def format_stat(stat: Optional[SeedStat], digits: int = 4) -> str:
    if stat is None:
        return "—"
    if stat.std is None:
        return f"{stat.mean:.{digits}g}"
    return f"{stat.mean:.{digits}g} ± {stat.std:.2g}"


def table_columns(table: Table, keys: set) -> tuple[list[Column], list[str]]:
    """The columns of ``table`` that some run logged, and the keys of those none logged."""
    columns, missing = [], []
    for column in table.columns:
        if column == "validation":
            found = validation_keys(keys)
            for key in found:
                title = validation_title(key)
                columns += [Column(key, f"{title} final", "final"), Column(key, f"{title} best", "best")]
            if not found:
                missing.append("val-core/<source>/<variable>/mean@<n>")
        elif column.key in keys:
            columns.append(column)
        elif column.key not in missing:
            missing.append(column.key)
    return columns, missing


def table_rows(columns: Sequence[Column], groups: Mapping[str, Sequence[Run]]) -> dict[str, list[Optional[SeedStat]]]:
    """``{group label: [SeedStat or None per column]}``."""
    return {label: [seed_stat(runs, c.key, c.stat) for c in columns] for label, runs in groups.items()}


def _seeds(runs: Sequence[Run]) -> str:
    seeds = [str(r.seed) if r.seed is not None else "?" for r in runs]
    return f"{len(runs)} ({', '.join(seeds)})"


def _steps(runs: Sequence[Run]) -> str:
    lasts = sorted({r.step_range[1] for r in runs})
    return str(lasts[0]) if len(lasts) == 1 else f"{lasts[0]}–{lasts[-1]}"


def table_markdown(table: Table, columns: Sequence[Column], groups: Mapping[str, Sequence[Run]]) -> str:
    """The table as markdown: group, seeds, last step, then one column per statistic."""
    header = ["group", "seeds", "last step", *(c.header for c in columns)]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, stats in table_rows(columns, groups).items():
        runs = groups[label]
        cells = [label, _seeds(runs), _steps(runs), *(
            "NaN (diverged)" if s is None and only_non_finite(runs, c.key) else format_stat(s)
            for s, c in zip(stats, columns)
        )]
        lines.append("| " + " | ".join(cells) + " |")
    keys = list(dict.fromkeys(c.key for c in columns))
    lines += ["", "Keys: " + ", ".join(f"`{k}`" for k in keys) + "."]
    return "\n".join(lines)
