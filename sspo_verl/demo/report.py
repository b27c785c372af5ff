"""The demo's own part of its report: how each run went as a job (time, memory, failures).

Figures and metric tables come from :func:`sspo_verl.report.write_report`, the library ``sspo-report`` uses;
this module adds what only the demo knows: wall and start-up time, peak memory of all the run's processes,
step time, and which runs failed. It reads verl's file-logger records (``{"step": int, "data": {...}}``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Optional

__all__ = ["WARMUP_STEPS", "jobs_markdown", "step_time_stats"]

WARMUP_STEPS = 2  # step 1 includes lazy start-up (agent-loop and reward workers); excluded from step-time stats


def step_time_stats(records: Sequence[Mapping], warmup: int = WARMUP_STEPS) -> Optional[dict]:
    """Median / mean / min / max of ``timing_s/step`` over steps after ``warmup``."""
    values = []
    for r in records:
        value = r.get("data", {}).get("timing_s/step")
        if int(r["step"]) > warmup and value is not None and not math.isnan(float(value)):
            values.append(float(value))
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "mean": statistics.fmean(values),
            "min": min(values), "max": max(values)}


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def jobs_markdown(runs: Mapping[str, Sequence[Mapping]], run_info: Mapping[str, Mapping]) -> str:
    """A markdown section: one row per run (steps, step time, start-up, peak RSS, wall), failures, caveat.

    Args:
        runs: run name → its file-logger records.
        run_info: run name → {"wall_s", "startup_s", "peak_rss_gb", "ok", "error"}.
    """
    lines = ["## The runs as jobs", "",
             "| run | steps | step time median (s) | start-up (s) | peak RSS, all processes (GB) | wall (s) |",
             "|---|---|---|---|---|---|"]
    for name, records in runs.items():
        info = run_info.get(name, {})
        st = step_time_stats(records)
        lines.append(f"| {name} | {len(records)} | {_fmt(st and st['median'])} | {_fmt(info.get('startup_s'), 0)} | "
                     f"{_fmt(info.get('peak_rss_gb'))} | {_fmt(info.get('wall_s'), 0)} |")
    failed = {n: i for n, i in run_info.items() if not i.get("ok", True)}
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {n}: {str(i.get('error', '')).splitlines()[0]}" for n, i in failed.items()]
    lines += [
        "",
        "Read with care: one seed, a random-weight 115k-parameter model and a few dozen steps show that the real "
        "trainer runs every algorithm end to end on CPU and how their metrics move; they are not evidence about "
        f"which algorithm is better. Step times exclude the first {WARMUP_STEPS} steps (lazy worker start-up) and "
        "depend on the machine's load.",
    ]
    return "\n".join(lines)
