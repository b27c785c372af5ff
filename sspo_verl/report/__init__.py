"""Reading logged metrics of several runs and reporting them side by side (``sspo-report``); no verl import.

Public API:
    write_report(runs, out_dir, ...)   figures, report.md and summary.json of runs grouped by algorithm / seed
    load_run(run_dir, source)          one run directory's metrics and identity (a :class:`Run`)
    run_from_records(name, algorithm, seed, records)   a :class:`Run` from verl file-logger records in memory
    group_runs(runs)                   {group label: runs}, splitting an algorithm by differing configs
    expand_run_dirs(paths)             run directories from run / sweep / project directories
    read_run_metrics(run_dir, source)  {step: {metric: value}} from JSONL parts or TensorBoard

The run directory's layout (metric log parts, the config record) is :mod:`sspo_verl.rundir`'s.
Modules: ``logs`` (reading), ``runs`` (identity, grouping),
``aggregate`` (statistics over seeds), ``catalogue`` (which metrics, which figure/table), ``plots``, ``tables``,
``report`` (:func:`write_report`), ``cli``.
"""

from sspo_verl.report.logs import MetricsNotFoundError, read_run_metrics
from sspo_verl.report.report import Report, expand_run_dirs, write_report
from sspo_verl.report.runs import Run, group_runs, load_run, run_from_records

__all__ = [
    "MetricsNotFoundError",
    "Report",
    "Run",
    "expand_run_dirs",
    "group_runs",
    "load_run",
    "read_run_metrics",
    "run_from_records",
    "write_report",
]
