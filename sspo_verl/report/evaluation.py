"""A sweep's evaluation in the report: accuracy per setting with its seed interval, and accuracy against step.

Reads ``<sweep dir>/eval/<key>/summary.json`` (written by ``sspo-eval sweep``: :mod:`sspo_verl.eval.sweep`) and
draws, per benchmark column, a dot-and-whisker panel (the mean over seeds, the 95 % t-interval as whiskers, each
seed's value as a small dot, n under the setting) into ``evaluation.png``; where several checkpoint steps were
evaluated, ``evaluation_steps.png`` has accuracy against step, one line per setting with the same whiskers.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Sequence

from sspo_verl.data.sources import DISPLAY
from sspo_verl.report.plots import _pyplot, group_colors

__all__ = ["find_summaries", "evaluation_markdown", "plot_evaluation", "plot_evaluation_steps"]


def find_summaries(paths: Sequence[str]) -> list[str]:
    """The ``eval/<key>/summary.json`` files of the given sweep directories (sorted; none is fine)."""
    found = []
    for path in paths:
        found += sorted(glob.glob(os.path.join(path, "eval", "eval-*", "summary.json")))
    return found


def load_summary(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            summary = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read a sweep evaluation summary ({exc}); rerun sspo-eval sweep") from None
    if not {"groups", "columns", "spec"} <= set(summary):
        raise ValueError(f"{path}: not an sspo-eval sweep summary.json (keys {sorted(summary)})")
    return summary


def _setting(group: dict) -> str:
    return group["algo"] + (f" {group['overrides']}" if group["overrides"] else "")


def _column_title(column: str) -> str:
    return DISPLAY.get(column, column)


def _last_step_groups(summary: dict) -> list[dict]:
    """Per setting, the group at its highest evaluated step (the dot-and-whisker figure shows one per setting)."""
    best: dict[str, dict] = {}
    for g in summary["groups"]:
        key = _setting(g)
        if key not in best or (g["step"] or -1) > (best[key]["step"] or -1):
            best[key] = g
    return list(best.values())


def plot_evaluation(path: str, summary: dict, title: str) -> str:
    """Dot-and-whisker: one panel per column, one x position per setting."""
    plt = _pyplot()
    groups = _last_step_groups(summary)
    columns = summary["columns"]
    colors = group_colors([_setting(g) for g in groups])
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    width = max(3.6, 1.1 * len(groups) + 1.4)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.4 * nrows + 0.7), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, column in zip(axes.flat, columns):
        ticks = []
        for x, g in enumerate(groups):
            cell = g["cells"].get(column)
            color = colors[_setting(g)]
            n = cell["n"] if cell else 0
            step = f"\nstep {g['step']}" if g["step"] is not None else ""
            failed = len(g["gaps"])
            ticks.append(f"{_setting(g)}\nn={n}" + (f", {failed} missing" if failed else "") + step)
            if not cell:
                ax.annotate("no run\nevaluated", (x, 0.5), xycoords=("data", "axes fraction"), ha="center",
                            fontsize=7, color="0.4")
                continue
            seeds = list(cell["values"].values())
            ax.scatter([x + 0.12] * len(seeds), seeds, s=12, color=color, alpha=0.45, linewidths=0, zorder=2)
            yerr = None if cell["half_width"] is None else [[cell["half_width"]], [cell["half_width"]]]
            ax.errorbar([x], [cell["mean"]], yerr=yerr, fmt="o", color=color, markersize=7, capsize=6,
                        elinewidth=2, zorder=3)
            ax.annotate(f"{cell['mean']:.1f}", (x - 0.12, cell["mean"]), ha="right", va="center", fontsize=8)
        ax.set_xticks(range(len(groups)), ticks, fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_title(_column_title(column), fontsize=10)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title} — mean over seeds (dot), 95 % t-interval (whiskers), seeds (small dots)", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_evaluation_steps(path: str, summary: dict, title: str) -> str | None:
    """Accuracy against checkpoint step, one line per setting; None (nothing written) with a single step."""
    steps = sorted({g["step"] for g in summary["groups"] if g["step"] is not None})
    if len(steps) < 2:
        return None
    plt = _pyplot()
    columns = summary["columns"]
    settings = list(dict.fromkeys(_setting(g) for g in summary["groups"]))
    colors = group_colors(settings)
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.3 * nrows + 0.7), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    dodge = 0.012 * (steps[-1] - steps[0])  # settings side by side at a step, so whiskers do not hide each other
    for ax, column in zip(axes.flat, columns):
        for i, setting in enumerate(settings):
            points = sorted((g["step"], g["cells"].get(column)) for g in summary["groups"]
                            if _setting(g) == setting and g["step"] is not None and g["cells"].get(column))
            if not points:
                continue
            xs = [s + (i - (len(settings) - 1) / 2) * dodge for s, _ in points]
            ys = [c["mean"] for _, c in points]
            errs = [c["half_width"] or 0.0 for _, c in points]
            ns = sorted({c["n"] for _, c in points})
            ax.errorbar(xs, ys, yerr=errs, color=colors[setting], marker="o", markersize=4, capsize=4,
                        label=f"{setting} (n={'/'.join(map(str, ns))})")
        ax.set_xticks(steps)
        ax.set_title(_column_title(column), fontsize=10)
        ax.set_xlabel("checkpoint step", fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8)
    fig.suptitle(f"{title} — accuracy against step, mean over seeds ± 95 % t-interval", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluation_markdown(summary_path: str, figures: Sequence[str]) -> list[str]:
    """The report's section for one sweep evaluation: its table (as sspo-eval sweep wrote it) and figures."""
    table = os.path.join(os.path.dirname(summary_path), "table.md")
    lines = ["## Evaluation", "", f"From `{summary_path}` (sspo-eval sweep).", ""]
    if os.path.isfile(table):
        with open(table, encoding="utf-8") as fh:
            body = fh.read().splitlines()
        lines += [line for line in body if not line.startswith("# ")] + [""]
    for f in figures:
        lines += [f"![{os.path.splitext(os.path.basename(f))[0]}]({os.path.basename(f)})", ""]
    return lines
