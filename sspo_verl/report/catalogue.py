"""Which logged metrics the report shows, in which figure and table (one place, keys documented).

Keys come from verl (``critic/score/mean``, ``actor/entropy``, ``actor/pg_clipfrac``, ``actor/ppo_kl``,
``response_length/mean``, ``val-core/<data source>/<variable>/mean@<n>``), from the actor-side granularity
diagnostics every loss mode logs (``actor/diag/*``, :mod:`sspo_verl.adapter.diagnostics`) and from SSPO's loss
(``actor/sspo/*``, SSPO runs only). What a run's config fixes (optimizer steps per rollout batch) is read from its
``resolved_config.yaml`` (:meth:`sspo_verl.report.runs.Run.updates_per_rollout`), not logged.
A metric no run logged is left out with a note, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

__all__ = ["FIGURES", "TABLES", "Column", "Figure", "Panel", "Table", "validation_keys"]

GRANULARITIES = ("token", "subsentence", "sequence")
_VALIDATION = re.compile(r"^val-core/(?P<source>.+)/(?P<variable>[^/]+)/mean@(?P<n>\d+)$")


@dataclass(frozen=True)
class Panel:
    """One subplot: a metric per step, every group's mean over seeds with a ±1 std band."""

    key: str
    title: str


@dataclass(frozen=True)
class Figure:
    """One PNG. ``panels`` holds :class:`Panel` s or ``"validation"`` (one panel per validation key found)."""

    name: str
    title: str
    panels: tuple
    ncols: int = 3
    sharey_rows: bool = False  # rows compare granularities: one y scale per row


@dataclass(frozen=True)
class Column:
    """One table column: a per-run statistic of a metric, then mean ± std over a group's seeds.

    ``stat``: ``final`` (value at the run's last logged step), ``best`` (maximum over steps) or ``mean``
    (mean over the run's logged steps).
    """

    key: str
    header: str
    stat: str


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple  # Column s, or "validation" (final and best of each validation key)


def _diag(metric: str, title: str) -> tuple[Panel, ...]:
    return tuple(Panel(f"actor/diag/{g}/{metric}", f"{g}: {title}") for g in GRANULARITIES)


FIGURES = (
    Figure(
        "training",
        "Reward, validation, entropy, response length",
        (
            Panel("critic/score/mean", "reward (training batch mean)"),
            "validation",
            Panel("actor/entropy", "policy entropy (actor/entropy)"),
            Panel("response_length/mean", "response length (tokens)"),
            Panel("actor/pg_clipfrac", "clip fraction as the loss reports it (actor/pg_clipfrac)"),
            Panel("actor/ppo_kl", "KL old→new as the loss reports it (actor/ppo_kl)"),
        ),
    ),
    Figure(
        "clipping",
        "Clipping at token / subsentence / sequence granularity, every algorithm (actor/diag/*)",
        _diag("clipfrac", "clipped tokens")
        + _diag("seq_all_clipped_frac", "responses with every token clipped")
        + _diag("seq_none_clipped_frac", "responses with no token clipped")
        + _diag("log_ratio_std", "std of the log-ratio"),
        ncols=3,
        sharey_rows=True,
    ),
    Figure(
        "off_policy",
        "Off-policyness and learning signal",
        (
            Panel("actor/diag/kl_old_new", "KL old→new (actor/diag/kl_old_new)"),
            Panel("actor/diag/abs_log_ratio_mean", "mean |log ratio|"),
            Panel("actor/diag/zero_adv_seq_frac", "responses with zero advantage (zero-variance groups)"),
        ),
    ),
    Figure(
        "sspo",
        "SSPO's own metrics (actor/sspo/*)",
        (
            Panel("actor/sspo/clipfrac_high", "clipped high (tokens)"),
            Panel("actor/sspo/clipfrac_low", "clipped low (tokens)"),
            Panel("actor/sspo/segment_clipfrac", "clipped segments"),
            Panel("actor/sspo/seq_all_clipped_frac", "responses with every token clipped"),
            Panel("actor/sspo/seq_none_clipped_frac", "responses with no token clipped"),
            Panel("actor/sspo/segments_per_seq", "segments per response"),
            Panel("actor/sspo/segment_len_mean", "segment length, mean"),
            Panel("actor/sspo/ratio_min", "segment ratio, min"),
            Panel("actor/sspo/ratio_max", "segment ratio, max"),
            Panel("actor/sspo/eps_scale_mean", "entropy scale g, mean"),
        ),
        ncols=5,
    ),
)

TABLES = (
    Table(
        "outcome",
        "Outcome (final = value at the last logged step; best = maximum over steps)",
        (
            Column("critic/score/mean", "reward final", "final"),
            Column("critic/score/mean", "reward best", "best"),
            "validation",
            Column("actor/entropy", "entropy final", "final"),
            Column("response_length/mean", "response length final", "final"),
        ),
    ),
    Table(
        "clipping",
        "Clipping by granularity (mean over steps)",
        tuple(Column(f"actor/diag/{g}/clipfrac", f"{g} clipfrac", "mean") for g in GRANULARITIES)
        + tuple(Column(f"actor/diag/{g}/seq_all_clipped_frac", f"{g}: all clipped", "mean") for g in GRANULARITIES)
        + (Column("actor/pg_clipfrac", "verl pg_clipfrac", "mean"),),
    ),
    Table(
        "off_policy",
        "Off-policyness and learning signal (mean over steps)",
        (
            Column("actor/diag/kl_old_new", "KL old→new", "mean"),
            Column("actor/diag/abs_log_ratio_mean", "mean abs log-ratio", "mean"),
            Column("actor/diag/zero_adv_seq_frac", "zero-advantage responses", "mean"),
        ),
    ),
    Table(
        "sspo",
        "SSPO (mean over steps)",
        (
            Column("actor/sspo/segments_per_seq", "segments / response", "mean"),
            Column("actor/sspo/segment_len_mean", "segment length", "mean"),
            Column("actor/sspo/segment_clipfrac", "segment clipfrac", "mean"),
            Column("actor/sspo/clipfrac_high", "clipped high", "mean"),
            Column("actor/sspo/clipfrac_low", "clipped low", "mean"),
            Column("actor/sspo/seq_all_clipped_frac", "all clipped", "mean"),
            Column("actor/sspo/eps_scale_mean", "entropy scale g", "mean"),
        ),
    ),
)


def validation_keys(keys: Iterable[str]) -> list[str]:
    """The validation accuracy keys among ``keys``: ``val-core/<source>/<variable>/mean@<n>``, sorted."""
    return sorted(k for k in set(keys) if _VALIDATION.match(k))


def validation_title(key: str) -> Optional[str]:
    match = _VALIDATION.match(key)
    if not match:
        return None
    return f"val {match.group('variable')} mean@{match.group('n')} [{match.group('source').rsplit('/', 1)[-1]}]"
