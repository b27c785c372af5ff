"""The demo's outputs: a PNG comparing the algorithms step by step, and a short markdown summary.

Both read verl's file-logger records (``{"step": int, "data": {metric: value}}``, one per step, from each run's
``metrics.jsonl``). Metric keys used:

    critic/score/mean        mean reward of the step's responses (task reward: char-F1 + exact)
    actor/entropy            mean token entropy of the policy on the step's responses
    actor/pg_clipfrac        fraction of tokens whose PPO-clip term is active (all algorithms)
    actor/sspo/segment_clipfrac, actor/sspo/segments_per_seq, actor/sspo/seq_all_clipped_frac   SSPO only
    response_length/mean     mean response length in tokens
    timing_s/step            wall time of the step (rollout, log-probs, update, weight sync)
    actor/perf/max_memory_allocated_gb   peak RSS of the trainer worker (CPU backend)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Optional

__all__ = ["PANELS", "plot_comparison", "step_time_stats", "summary_markdown"]

# (title, metric key, optional SSPO-only extra key drawn dashed)
PANELS = (
    ("Reward (critic/score/mean)", "critic/score/mean", None),
    ("Entropy (actor/entropy)", "actor/entropy", None),
    ("Clip fraction (actor/pg_clipfrac; dashed: SSPO segment clip fraction)", "actor/pg_clipfrac",
     "actor/sspo/segment_clipfrac"),
    ("Response length (response_length/mean)", "response_length/mean", None),
)
WARMUP_STEPS = 2  # step 1 includes lazy start-up (agent-loop and reward workers); excluded from step-time stats


def _series(records: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for r in records:
        value = r.get("data", {}).get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            steps.append(int(r["step"]))
            values.append(float(value))
    return steps, values


def _rolling(values: list[float], window: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_comparison(runs: Mapping[str, Sequence[Mapping]], path: str, title: str = "") -> str:
    """Write a 2x2 PNG of :data:`PANELS` with one line per run (raw: thin, 5-step rolling mean: bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel_title, key, extra) in zip(axes.flat, PANELS):
        for i, (name, records) in enumerate(runs.items()):
            color = colors[i % len(colors)]
            steps, values = _series(records, key)
            if steps:
                ax.plot(steps, values, color=color, alpha=0.3, linewidth=1)
                ax.plot(steps, _rolling(values), color=color, linewidth=2, label=name)
            if extra:
                steps, values = _series(records, extra)
                if steps:
                    ax.plot(steps, _rolling(values), color=color, linewidth=1.5, linestyle="--",
                            label=f"{name} (segment)")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def step_time_stats(records: Sequence[Mapping], warmup: int = WARMUP_STEPS) -> Optional[dict]:
    """Median / mean / min / max of ``timing_s/step`` over steps after ``warmup``."""
    steps, values = _series(records, "timing_s/step")
    values = [v for s, v in zip(steps, values) if s > warmup]
    if not values:
        return None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def _mean(values: list[float]) -> Optional[float]:
    return statistics.fmean(values) if values else None


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_markdown(
    runs: Mapping[str, Sequence[Mapping]],
    run_info: Mapping[str, Mapping],
    conditions: Mapping[str, str],
    png_name: str,
) -> str:
    """A short markdown report: conditions, one table row per run, SSPO's subsentence metrics, caveats.

    Args:
        runs: run name → records.
        run_info: run name → {"wall_s", "startup_s", "peak_rss_gb", "metrics", "ok", "error"}.
        conditions: label → value (machine, versions, seed, steps).
        png_name: file name of the comparison figure (same directory).
    """
    lines = ["# sspo-verl CPU demo: GRPO, GSPO and SSPO on the embedded tiny task", ""]
    lines += [f"- **{k}**: {v}" for k, v in conditions.items()]
    lines += ["", f"![comparison]({png_name})", ""]
    lines += [
        "| run | steps | reward, first 5 → last 5 steps | entropy, first → last | mean clip fraction | "
        "step time median (s) | start-up (s) | peak RSS, all processes (GB) | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, records in runs.items():
        info = run_info.get(name, {})
        _, reward = _series(records, "critic/score/mean")
        _, entropy = _series(records, "actor/entropy")
        _, clip = _series(records, "actor/pg_clipfrac")
        st = step_time_stats(records)
        lines.append(
            f"| {name} | {len(records)} | {_fmt(_mean(reward[:5]))} → {_fmt(_mean(reward[-5:]))} | "
            f"{_fmt(entropy[0] if entropy else None, 2)} → {_fmt(entropy[-1] if entropy else None, 2)} | "
            f"{_fmt(_mean(clip), 4)} | {_fmt(st and st['median'], 2)} | {_fmt(info.get('startup_s'), 0)} | "
            f"{_fmt(info.get('peak_rss_gb'), 2)} | {_fmt(info.get('wall_s'), 0)} |"
        )
    sspo = {n: r for n, r in runs.items() if _series(r, "actor/sspo/segments_per_seq")[0]}
    if sspo:
        lines += ["", "SSPO's subsentence metrics (means over steps):", ""]
        lines += ["| run | segments per response | segment clip fraction | responses with every token clipped |",
                  "|---|---|---|---|"]
        for name, records in sspo.items():
            lines.append(
                f"| {name} | {_fmt(_mean(_series(records, 'actor/sspo/segments_per_seq')[1]), 2)} | "
                f"{_fmt(_mean(_series(records, 'actor/sspo/segment_clipfrac')[1]), 4)} | "
                f"{_fmt(_mean(_series(records, 'actor/sspo/seq_all_clipped_frac')[1]), 4)} |"
            )
    failed = {n: i for n, i in run_info.items() if not i.get("ok", True)}
    if failed:
        lines += ["", "Runs that failed:", ""]
        lines += [f"- {n}: {str(i.get('error', '')).splitlines()[0]}" for n, i in failed.items()]
    lines += [
        "",
        "Per-step metrics (verl's file logger, one JSON record per step): "
        + ", ".join(f"`{i.get('metrics', '')}`" for i in run_info.values()),
        "",
        "Read with care: one seed, a random-weight 115k-parameter model and a few dozen steps show that the real "
        "trainer runs every algorithm end to end on CPU and how their metrics move; they are not evidence about "
        "which algorithm is better. Step times exclude the first "
        f"{WARMUP_STEPS} steps (lazy worker start-up) and depend on the machine's load.",
        "",
    ]
    return "\n".join(lines)
