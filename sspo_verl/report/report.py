"""The report: figures and tables of several runs grouped by algorithm and seed, written to one directory.

    <out>/report.md        runs read, figures, tables, notes (missing metrics, how runs were identified)
    <out>/training.png     reward, validation accuracy, entropy, response length, verl's clip fraction and KL
    <out>/clipping.png     token / subsentence / sequence clip statistics (actor/diag/*), every algorithm
    <out>/off_policy.png   KL old→new, optimizer steps per rollout, zero-variance groups, zero-advantage responses
    <out>/sspo.png         SSPO's own metrics (only if an SSPO run is among them)
    <out>/summary.json     the table numbers (group → column → mean, std, n) for scripts
    <out>/evaluation.png   with a sweep's evaluation (sspo-eval sweep): accuracy per setting, seed interval
    <out>/evaluation_steps.png   ... and accuracy against step, where several steps were evaluated
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from sspo_verl.report.catalogue import FIGURES, TABLES
from sspo_verl.report.divergence import Divergence, divergence_markdown, find_divergence
from sspo_verl.report.evaluation import evaluation_markdown, load_summary, plot_evaluation, plot_evaluation_steps
from sspo_verl.report.logs import MetricsNotFoundError, find_sources
from sspo_verl.report.plots import figure_panels, group_colors, plot_figure
from sspo_verl.report.runs import Run, group_runs, load_run
from sspo_verl.report.tables import table_columns, table_markdown, table_rows

__all__ = ["REPORT_FILE", "Report", "expand_run_dirs", "write_report"]

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.json"


@dataclass
class Report:
    """What :func:`write_report` wrote.

    Attributes:
        out_dir: the output directory.
        markdown: path of ``report.md``.
        figures: paths of the PNGs written.
        summary: path of ``summary.json``.
        groups: ``{group label: runs}``.
        notes: the report's notes (missing metrics, identities).
        divergence: the runs that logged NaN / inf, first step first (also ``## Divergence`` in the markdown
            and ``divergence`` in ``summary.json``).
    """

    out_dir: str
    markdown: str
    figures: list[str]
    summary: str
    groups: dict[str, list[Run]]
    notes: list[str] = field(default_factory=list)
    divergence: list[Divergence] = field(default_factory=list)


def _has_metrics(path: str) -> bool:
    sources = find_sources(path)
    return bool(sources["jsonl"] or sources["tensorboard"])


def expand_run_dirs(paths: Sequence[str]) -> list[str]:
    """Run directories from the given paths: a path with metrics is a run; a path without any whose
    subdirectories hold runs (a sweep or project directory) stands for those subdirectories.

    Raises:
        MetricsNotFoundError: a path that is neither, named.
    """
    out = []
    for path in paths:
        if not os.path.isdir(path):
            raise MetricsNotFoundError(f"{path}: not a directory")
        if _has_metrics(path):
            out.append(path)
            continue
        children = sorted(os.path.join(path, d) for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
        children = [c for c in children if _has_metrics(c)]
        if not children:
            raise MetricsNotFoundError(
                f"{path}: no metrics here (metrics*.jsonl or TensorBoard event files) and no run directories "
                "below it. Pass run directories written by sspo-train (<output_dir>/<project>/<experiment>)."
            )
        out += children
    return out


def _missing_note(what: str, missing: Sequence[str], written: bool) -> str:
    keys = ", ".join(f"`{k}`" for k in missing)
    if written:
        return f"{what}: no run logged {keys}; left out"
    return f"{what}: not written, no run logged any of its metrics ({keys})"


def _updates(run: Run) -> str:
    layout = run.updates_per_rollout()
    if layout is None:
        return "?"
    mini_batches, epochs = layout
    return f"{mini_batches:g} × {epochs} = {mini_batches * epochs:g}"


def _section_runs(groups: Mapping[str, Sequence[Run]]) -> list[str]:
    lines = ["## Runs", "",
             "| group | seed | run | steps | optimizer steps / rollout (mini-batches × epochs) | source |",
             "|---|---|---|---|---|---|"]
    for label, runs in groups.items():
        for run in runs:
            first, last = run.step_range
            where = run.run_dir or run.name
            files = ", ".join(os.path.basename(f) for f in run.files) or run.source
            lines.append(f"| {label} | {run.seed if run.seed is not None else '?'} | `{where}` | {first}–{last} | "
                         f"{_updates(run)} | {run.source}: {files} |")
    return lines


def write_report(
    runs: Sequence[Union[str, Run]],
    out_dir: str,
    *,
    title: str = "GRPO / GSPO / SSPO runs",
    source: str = "auto",
    window: int = 1,
    conditions: Optional[Mapping[str, str]] = None,
    extra_markdown: str = "",
    evaluations: Sequence[str] = (),
) -> Report:
    """Read runs, group them, write the figures, ``report.md`` and ``summary.json`` into ``out_dir``.

    Args:
        runs: run directories (``sspo-train``'s) or :class:`Run` objects (e.g. from ``run_from_records``).
        out_dir: created if needed; existing report files are replaced.
        title: the report's heading.
        source: ``auto`` | ``jsonl`` | ``tensorboard`` (see :func:`sspo_verl.report.logs.read_run_metrics`).
        window: trailing moving average over this many logged points in the figures (tables use raw values).
        conditions: ``label → value`` lines under the heading (machine, versions, ...).
        extra_markdown: appended at the end (e.g. the demo's timing table).
        evaluations: ``summary.json`` files of ``sspo-eval sweep`` (:func:`sspo_verl.report.evaluation.find_summaries`):
            their table and figures (``evaluation*.png``; with several, ``evaluation-<key>*.png``) join the report.

    Raises:
        MetricsNotFoundError: a run directory without metrics (named).
        ValueError: two runs with the same group and seed.
    """
    loaded = [r if isinstance(r, Run) else load_run(r, source) for r in runs]
    if not loaded:
        raise ValueError("no runs given")
    groups = group_runs(loaded)
    os.makedirs(out_dir, exist_ok=True)
    keys = set().union(*(r.keys() for r in loaded))
    colors = group_colors(list(groups))
    notes = [n for r in loaded for n in r.notes]

    figures, figure_lines = [], []
    for figure in FIGURES:
        path = os.path.join(out_dir, f"{figure.name}.png")
        panels, missing = figure_panels(figure, keys)
        if os.path.exists(path):
            os.remove(path)  # never leave a stale figure of an earlier report
        if missing:
            notes.append(_missing_note(f"{figure.name}.png", missing, bool(panels)))
        if not panels:
            continue
        figures.append(plot_figure(path, figure, panels, groups, colors, window))
        figure_lines += [f"### {figure.title}", "", f"![{figure.name}]({figure.name}.png)", ""]

    summary: dict = {}
    table_lines = []
    for table in TABLES:
        columns, missing = table_columns(table, keys)
        if missing:
            notes.append(_missing_note(f"table '{table.name}'", missing, bool(columns)))
        if not columns:
            continue
        table_lines += [table_markdown(table, columns, groups), ""]
        for label, stats in table_rows(columns, groups).items():
            for column, stat in zip(columns, stats):
                entry = None if stat is None else {"mean": stat.mean, "std": stat.std, "n": stat.n}
                summary.setdefault(label, {})[f"{column.key}:{column.stat}"] = entry

    evaluation_lines = []
    for name in ("evaluation.png", "evaluation_steps.png"):
        stale = os.path.join(out_dir, name)
        if os.path.exists(stale):
            os.remove(stale)
    for summary_path in evaluations:
        evaluation = load_summary(summary_path)
        suffix = "" if len(evaluations) == 1 else f"-{evaluation['spec']['key']}"
        drawn = [plot_evaluation(os.path.join(out_dir, f"evaluation{suffix}.png"), evaluation, title)]
        steps = plot_evaluation_steps(os.path.join(out_dir, f"evaluation_steps{suffix}.png"), evaluation, title)
        drawn += [steps] if steps else []
        figures += drawn
        evaluation_lines += evaluation_markdown(summary_path, drawn)

    differing = sorted({r.label for r in loaded if r.label != r.algorithm})
    if differing:
        notes.append("runs of one algorithm with different configs are separate groups: " + "; ".join(differing))

    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in (conditions or {}).items()]
    if conditions:
        lines.append("")
    diverged = find_divergence(loaded)
    lines += _section_runs(groups) + [""] + divergence_markdown(diverged)
    lines += evaluation_lines
    lines += ["## Figures", ""] + figure_lines + ["## Tables", ""] + table_lines
    lines += [
        "Cells: mean ± sample std over the group's seeds (one seed: the value alone; — : not logged). Metric keys "
        "are verl's (`critic/*`, `actor/*`, `val-core/*`), the granularity diagnostics every loss logs "
        "(`actor/diag/*`) and SSPO's (`actor/sspo/*`).",
        "",
    ]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if extra_markdown:
        lines += [extra_markdown.rstrip(), ""]
    markdown = os.path.join(out_dir, REPORT_FILE)
    with open(markdown, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    summary_path = os.path.join(out_dir, SUMMARY_FILE)
    with open(summary_path, "w", encoding="utf-8") as fh:
        json.dump({"groups": {label: [r.run_dir or r.name for r in runs] for label, runs in groups.items()},
                   "stats": summary,
                   "divergence": {d.run: {"first_step": d.first_step, "metrics": d.metrics} for d in diverged}},
                  fh, indent=1, sort_keys=True)
    return Report(out_dir=out_dir, markdown=markdown, figures=figures, summary=summary_path, groups=groups,
                  notes=notes, divergence=diverged)
